"""Screening trial (50, 75, 100 mcg boluses 24 h apart) and the first pump dose rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from openitb.drugs import DrugLibrary, load_library
from openitb.errors import InvalidInput
from openitb.units import Hours, McgPerDay, Micrograms

# A response is positive when tone falls by at least this many Modified Ashworth points on
# average over the muscle groups scored (configurable default; the label says "reduced tone
# and/or spasm frequency or severity" without a number).
DEFAULT_MAS_RESPONSE_POINTS = 1.0

# The six grades of the Modified Ashworth Scale as clinics write them (Bohannon & Smith 1987,
# Phys Ther 67:206) and the number each is stored and averaged as: 1+ lies between 1 and 2.
MAS_GRADES: dict[str, float] = {"0": 0.0, "1": 1.0, "1+": 1.5, "2": 2.0, "3": 3.0, "4": 4.0}
MAS_ALLOWED = "a Modified Ashworth grade: 0, 1, 1+, 2, 3 or 4"


def parse_mas(raw: object, field: str) -> float:
    """The one reader of a Modified Ashworth grade typed or sent from outside: "0", "1", "1+",
    "2", "3", "4" (or their stored numbers, 1.5 for 1+); anything else is refused."""
    if isinstance(raw, bool):
        raise InvalidInput(field, raw, MAS_ALLOWED)
    if isinstance(raw, int | float):
        for value in MAS_GRADES.values():
            if raw == value:
                return value
        raise InvalidInput(field, raw, MAS_ALLOWED)
    text = "" if raw is None else "".join(str(raw).split())
    if text in MAS_GRADES:
        return MAS_GRADES[text]
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(field, raw, MAS_ALLOWED) from None
    return parse_mas(number, field)


def mas_grade(score: float) -> str | None:
    """The grade a stored score stands for ("1+" for 1.5), None if it is not one of the six."""
    for grade, value in MAS_GRADES.items():
        if float(score) == value:
            return grade
    return None


def screening_schedule(
    start: datetime, library: DrugLibrary | None = None, *, weight_kg: float | None = None
) -> list[tuple[datetime, Micrograms]]:
    """The screening boluses 24 h apart. A very small child (below the library's weight,
    drugs.toml ``small_child_weight_below_kg``, (R)) is first tried at the label's smaller
    screening dose (25 mcg), then the usual 50, 75, 100 mcg."""
    lib = library or load_library()
    step = timedelta(hours=lib.screening_interval_hours)
    doses = list(lib.screening_doses)
    first = lib.first_screening_dose(weight_kg)
    if first.value < doses[0].value:
        doses.insert(0, first)
    return [(start + i * step, dose) for i, dose in enumerate(doses)]


@dataclass(frozen=True)
class FirstDose:
    dose_per_day: McgPerDay
    rule: str


def first_pump_dose(
    effective_bolus: Micrograms, effect_duration: Hours, library: DrugLibrary | None = None
) -> FirstDose:
    """Twice the effective screening dose per day; the dose itself if the effect lasted > 8 h."""
    lib = library or load_library()
    top = max(d.value for d in lib.screening_doses)
    if not 0 < effective_bolus.value <= top:
        raise InvalidInput(
            "effective_bolus", str(effective_bolus), f"a screening bolus above 0 and up to {top:g} mcg"
        )
    if not 0 < effect_duration.value <= 48:
        raise InvalidInput("effect_hours", str(effect_duration), "an effect duration of 0 to 48 h")
    if effect_duration.value > lib.first_dose_long_effect_hours:
        return FirstDose(
            McgPerDay(effective_bolus.value),
            f"effect lasted more than {lib.first_dose_long_effect_hours:g} h: "
            "the effective screening dose per day",
        )
    return FirstDose(
        McgPerDay(effective_bolus.value * lib.first_dose_multiplier),
        f"{lib.first_dose_multiplier:g} x the effective screening dose per day",
    )


@dataclass(frozen=True)
class ScreeningDose:
    dose: Micrograms
    mas_before: Sequence[float]  # per muscle group, 0-4 (1+ stored as 1.5)
    mas_after: Sequence[float]
    effect_hours: float = 0.0


@dataclass(frozen=True)
class ScreeningOutcome:
    responder: bool
    effective_dose: Micrograms | None
    first_dose: FirstDose | None
    reason: str


def _check_mas(values: Sequence[float], field: str) -> None:
    if not values:
        raise InvalidInput(field, list(values), "at least one muscle group score")
    for v in values:
        if not 0 <= v <= 4:
            raise InvalidInput(field, v, "Modified Ashworth scores from 0 to 4 (1+ as 1.5)")


def evaluate_screening(
    doses: Sequence[ScreeningDose],
    *,
    response_points: float = DEFAULT_MAS_RESPONSE_POINTS,
    library: DrugLibrary | None = None,
) -> ScreeningOutcome:
    """Walk the protocol in order; the first dose with a positive response ends it."""
    lib = library or load_library()
    expected = list(lib.screening_doses)
    for i, sd in enumerate(doses):
        if i >= len(expected) or abs(sd.dose.value - expected[i].value) > 1e-9:
            allowed = ", ".join(str(d) for d in expected)
            raise InvalidInput(f"doses[{i}]", str(sd.dose), f"the protocol gives {allowed} in order")
        _check_mas(sd.mas_before, f"doses[{i}].mas_before")
        _check_mas(sd.mas_after, f"doses[{i}].mas_after")
        if len(sd.mas_before) != len(sd.mas_after):
            raise InvalidInput(f"doses[{i}].mas_after", len(sd.mas_after), "one score per group before")
        drop = sum(b - a for b, a in zip(sd.mas_before, sd.mas_after, strict=True)) / len(sd.mas_before)
        if drop >= response_points:
            first = first_pump_dose(sd.dose, Hours(max(sd.effect_hours, 0.1)), lib)
            return ScreeningOutcome(
                True, sd.dose, first,
                f"MAS fell {drop:.2f} points on average after {sd.dose} (criterion "
                f">= {response_points:g}); first pump dose {first.dose_per_day} ({first.rule})",
            )
    if len(doses) == len(expected):
        return ScreeningOutcome(
            False, None, None,
            f"no response up to {expected[-1]}: not a candidate for intrathecal baclofen",
        )
    return ScreeningOutcome(
        False, None, None,
        f"no response yet; next dose {expected[len(doses)]} "
        f"{lib.screening_interval_hours:g} h after the last",
    )
