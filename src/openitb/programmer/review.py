"""Legacy review of a program change, kept only for ``clinic/services.py`` until the clinic is
rebuilt on the safety kernel (branch ``clinickernel``). The programmer itself no longer uses it:
every programmer review comes from :func:`openitb.safety.review`, the one place that decides.
Do not add callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openitb.devices import PumpProfile
from openitb.drugs import Context, Origin, Population
from openitb.errors import RefusedOperation
from openitb.therapy.guardrails import Classification, check_change, check_prescription_dose
from openitb.therapy.prescription import Prescription, describe_segments, validate_for_pump
from openitb.units import McgPerDay, McgPerMl


@dataclass(frozen=True)
class ReviewRow:
    field: str
    current: str
    proposed: str
    changed: bool
    classification: Classification | None = None
    reason: str = ""


def gate(classification: Classification, reason: str, *, confirmed: bool,
         override_reason: str | None) -> str | None:
    """Gate before writing: refuse out-of-bounds, unconfirmed or unexplained changes.

    Returns the override reason to log, if one was needed.
    """
    if not classification.allowed:
        raise RefusedOperation(reason, code="guardrail_absolute")
    if not confirmed:
        raise RefusedOperation("the change was not confirmed on the review screen; nothing was "
                               "written", code="unconfirmed")
    if classification.needs_override:
        if not override_reason or len(override_reason.strip()) < 5:
            raise RefusedOperation(f"{reason}; give an override reason (at least 5 characters)",
                                   code="override_required")
        return override_reason.strip()
    return None


class Gated:
    """What every review screen shares: its classification decides refusal, override, gate."""

    classification: Classification
    reason: str

    @property
    def refused(self) -> bool:
        return not self.classification.allowed

    @property
    def needs_override(self) -> bool:
        return self.classification.needs_override

    def confirm(self, *, confirmed: bool, override_reason: str | None = None) -> str | None:
        return gate(self.classification, self.reason, confirmed=confirmed,
                    override_reason=override_reason)


@dataclass(frozen=True)
class Review(Gated):
    rows: tuple[ReviewRow, ...]
    classification: Classification
    reason: str
    proposed: Prescription
    concentration: McgPerMl
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _segments_text(p: Prescription | None) -> list[str]:
    if p is None:
        return []
    return [
        f"{r['start']}-{r['end']}: {r['mcg_per_hour']:.3g} mcg/h = {r['mcg_per_day']:.4g} mcg/day "
        f"({r['dose_mcg']:.4g} mcg in the step)"
        for r in describe_segments(p)
    ]


def review_program(
    current: Prescription | None,
    current_concentration: McgPerMl | None,
    proposed: Prescription,
    concentration: McgPerMl,
    profile: PumpProfile,
    *,
    origin: Origin,
    context: Context,
    population: Population | None = None,
) -> Review:
    """Build the side-by-side review of a program change."""
    validate_for_pump(proposed, profile, concentration)
    pop = population or Population(origin.value)
    new_daily = proposed.daily_dose().value
    rows: list[ReviewRow] = []
    daily_cls, daily_reason = check_prescription_dose(proposed, pop)
    if current is not None and current.daily_dose().value > 0:
        chk = check_change(McgPerDay(current.daily_dose().value), McgPerDay(new_daily),
                           origin, context, population=pop)
        cls, reason = chk.classification, chk.reason
    else:
        cls, reason = daily_cls, daily_reason
    # The worse of the change check and the daily-dose check governs.
    order = [Classification.WITHIN, Classification.BELOW_RECOMMENDED,
             Classification.ABOVE_RECOMMENDED, Classification.BELOW_ABSOLUTE,
             Classification.ABOVE_ABSOLUTE]
    if order.index(daily_cls) > order.index(cls):
        cls, reason = daily_cls, daily_reason
    cur_daily = current.daily_dose().value if current else None
    rows.append(ReviewRow(
        "daily dose",
        f"{cur_daily:.4g} mcg/day" if cur_daily is not None else "-",
        f"{new_daily:.4g} mcg/day",
        cur_daily is None or abs(cur_daily - new_daily) > 1e-9,
        cls, reason,
    ))
    rows.append(ReviewRow(
        "mode", current.mode.value if current else "-", proposed.mode.value,
        current is None or current.mode != proposed.mode,
    ))
    rows.append(ReviewRow(
        "concentration",
        str(current_concentration) if current_concentration else "-",
        str(concentration),
        current_concentration is None or current_concentration != concentration,
    ))
    cur_seg, new_seg = _segments_text(current), _segments_text(proposed)
    for i in range(max(len(cur_seg), len(new_seg))):
        a = cur_seg[i] if i < len(cur_seg) else "-"
        b = new_seg[i] if i < len(new_seg) else "-"
        rows.append(ReviewRow(f"step {i + 1}", a, b, a != b))
    flow = new_daily / concentration.value
    rows.append(ReviewRow("flow (24 h average)", "-" if current is None or current_concentration is None
                          else f"{current.daily_dose().value / current_concentration.value:.4g} mL/day",
                          f"{flow:.4g} mL/day", True))
    return Review(tuple(rows), cls, reason, proposed, concentration)
