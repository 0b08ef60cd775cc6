"""Guardrails: absolute and recommended bounds, and a classification with a reason.

The idea follows LoopKit's Guardrail: a value inside the recommended range is ``within``; outside
it but inside the absolute range it is allowed only with a documented override; outside the
absolute range it is refused. Dose changes are checked against the label's titration and
maintenance limits for the origin of spasticity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from openitb.drugs import ChangeLimit, Context, DrugLibrary, Origin, Population, load_library
from openitb.errors import InvalidInput
from openitb.therapy.prescription import Prescription
from openitb.units import McgPerDay


class Classification(str, Enum):
    WITHIN = "within"
    BELOW_RECOMMENDED = "below_recommended"
    ABOVE_RECOMMENDED = "above_recommended"
    BELOW_ABSOLUTE = "below_absolute"
    ABOVE_ABSOLUTE = "above_absolute"

    @property
    def allowed(self) -> bool:
        return self not in (Classification.BELOW_ABSOLUTE, Classification.ABOVE_ABSOLUTE)

    @property
    def needs_override(self) -> bool:
        return self in (Classification.BELOW_RECOMMENDED, Classification.ABOVE_RECOMMENDED)


@dataclass(frozen=True)
class Guardrail:
    absolute_min: float
    recommended_min: float
    recommended_max: float
    absolute_max: float
    unit: str
    what: str

    def classify(self, value: float) -> tuple[Classification, str]:
        u, w = self.unit, self.what
        if value < self.absolute_min:
            return Classification.BELOW_ABSOLUTE, (
                f"{w} {value:g} {u} is below the absolute minimum of {self.absolute_min:g} {u}"
            )
        if value > self.absolute_max:
            return Classification.ABOVE_ABSOLUTE, (
                f"{w} {value:g} {u} is above the absolute maximum of {self.absolute_max:g} {u}"
            )
        if value < self.recommended_min:
            return Classification.BELOW_RECOMMENDED, (
                f"{w} {value:g} {u} is below the recommended {self.recommended_min:g} {u}; "
                "an override reason is required"
            )
        if value > self.recommended_max:
            return Classification.ABOVE_RECOMMENDED, (
                f"{w} {value:g} {u} is above the recommended {self.recommended_max:g} {u}; "
                "an override reason is required"
            )
        return Classification.WITHIN, (
            f"{w} {value:g} {u} is within the recommended "
            f"{self.recommended_min:g}-{self.recommended_max:g} {u}"
        )


def daily_dose_guardrail(population: Population, library: DrugLibrary | None = None) -> Guardrail:
    b = (library or load_library()).bounds(population)
    return Guardrail(
        b.absolute_min.value, b.recommended_min.value, b.recommended_max.value,
        b.absolute_max.value, "mcg/day", "daily dose",
    )


@dataclass(frozen=True)
class ChangeCheck:
    current: McgPerDay
    proposed: McgPerDay
    change_pct: float
    classification: Classification
    reason: str
    recommended_min: McgPerDay
    recommended_max: McgPerDay
    absolute_min: McgPerDay
    absolute_max: McgPerDay


def check_change(
    current: McgPerDay,
    proposed: McgPerDay,
    origin: Origin,
    context: Context,
    *,
    population: Population | None = None,
    library: DrugLibrary | None = None,
    limit: ChangeLimit | None = None,
) -> ChangeCheck:
    """Classify a change of daily dose against the step limit and the daily-dose bounds.

    The recommended range is the intersection of the label's per-24 h step limit (by origin and
    context) with the recommended daily-dose bounds; the absolute range is the intersection of a
    step of ``absolute step factor`` times the recommended one with the absolute daily bounds.
    """
    lib = library or load_library()
    if current.value <= 0:
        raise InvalidInput("current", str(current), "a current daily dose above 0 mcg/day")
    pop = population or Population(origin.value)
    limit = limit or lib.change_limit_for(pop, origin, context)
    daily = lib.bounds(pop)
    f = lib.absolute_step_factor
    c = current.value
    rec_lo = max(c * (1 - limit.decrease_max), daily.recommended_min.value)
    rec_hi = min(c * (1 + limit.increase_max), daily.recommended_max.value)
    abs_lo = max(c * max(0.0, 1 - f * limit.decrease_max), daily.absolute_min.value)
    abs_hi = min(c * (1 + f * limit.increase_max), daily.absolute_max.value)
    if abs_hi < abs_lo:  # current dose outside the absolute range: allow moving back to it
        if c < daily.absolute_min.value:
            abs_hi = abs_lo
        else:
            abs_lo = abs_hi
    # Bounds are products of fractions: tidy them so that an exact label step
    # (400 mcg/day + 15 % = 460) is not misread as 459.99999999999994.
    rec_lo, rec_hi, abs_lo, abs_hi = (_tidy(x) for x in (rec_lo, rec_hi, abs_lo, abs_hi))
    p = proposed.value
    pct = (p - c) / c * 100.0
    step = (f"{origin.value} {context.value}" if pop is not Population.PEDIATRIC
            else f"pediatric {context.value}")
    label_step = (
        f"+{limit.increase_min * 100:g} to {limit.increase_max * 100:g} % or "
        f"-{limit.decrease_max * 100:g} % per 24 h"
    )
    if p > abs_hi:
        cls = Classification.ABOVE_ABSOLUTE
        reason = (
            f"{p:g} mcg/day ({pct:+.1f} %) exceeds the absolute limit of {abs_hi:g} mcg/day "
            f"for {step} (label step {label_step}; absolute daily maximum "
            f"{daily.absolute_max.value:g} mcg/day); refused"
        )
    elif p < abs_lo:
        cls = Classification.BELOW_ABSOLUTE
        reason = (
            f"{p:g} mcg/day ({pct:+.1f} %) is under the absolute limit of {abs_lo:g} mcg/day "
            f"for {step} (label step {label_step}; absolute daily minimum "
            f"{daily.absolute_min.value:g} mcg/day); refused"
        )
    elif p > rec_hi:
        cls = Classification.ABOVE_RECOMMENDED
        reason = (
            f"{p:g} mcg/day ({pct:+.1f} %) is above the recommended {rec_hi:g} mcg/day for "
            f"{step} (label step {label_step}; recommended daily maximum "
            f"{daily.recommended_max.value:g} mcg/day); an override reason is required"
        )
    elif p < rec_lo:
        cls = Classification.BELOW_RECOMMENDED
        reason = (
            f"{p:g} mcg/day ({pct:+.1f} %) is below the recommended {rec_lo:g} mcg/day for "
            f"{step} (label step {label_step}; recommended daily minimum "
            f"{daily.recommended_min.value:g} mcg/day); an override reason is required"
        )
    else:
        cls = Classification.WITHIN
        reason = (
            f"{p:g} mcg/day ({pct:+.1f} %) is within the recommended {rec_lo:g}-{rec_hi:g} "
            f"mcg/day for {step}"
        )
    if rec_hi < rec_lo and cls is not Classification.WITHIN and cls.allowed:
        reason += (
            "; the current dose lies outside the recommended daily range, so no change is "
            "within it until the dose returns to that range"
        )
    return ChangeCheck(
        current, proposed, pct, cls, reason,
        McgPerDay(rec_lo), McgPerDay(rec_hi), McgPerDay(abs_lo), McgPerDay(abs_hi),
    )


def _tidy(x: float) -> float:
    """Round away binary noise from products like 400 x 1.15 (12 significant digits)."""
    return float(f"{x:.12g}")


def check_prescription_dose(
    prescription: Prescription,
    population: Population,
    library: DrugLibrary | None = None,
) -> tuple[Classification, str]:
    """Classify a program's daily dose; refuse (InvalidInput) one outside the absolute bounds.

    This is what catches a flex step entered per hour: 60 mcg/h in every step is 1440 mcg/day.
    """
    rail = daily_dose_guardrail(population, library)
    total = prescription.daily_dose().value
    cls, reason = rail.classify(total)
    if not cls.allowed:
        raise InvalidInput(
            "prescription",
            f"{total:g} mcg/day in all",
            f"{reason}; check each step is a daily rate (mcg/day), not mcg per hour",
        )
    return cls, reason
