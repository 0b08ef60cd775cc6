"""Review screens for changes other than a program: refill, bolus, alarm threshold, patient
bolus limits, restart. Same rule as the program review: side by side, each changed value
classified, explicit confirmation, an override reason outside recommended bounds, refusal
outside absolute bounds. Pure.

Bounds marked (R) are OpenITB defaults, not published limits; they are listed in docs/safety.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openitb.devices import PumpProfile
from openitb.drugs import DrugLibrary, Product
from openitb.errors import InvalidInput, RefusedOperation
from openitb.programmer.review import Gated, ReviewRow
from openitb.therapy.guardrails import Classification, Guardrail
from openitb.units import McgPerMl, Micrograms

ORDER = (Classification.WITHIN, Classification.BELOW_RECOMMENDED,
         Classification.ABOVE_RECOMMENDED, Classification.BELOW_ABSOLUTE,
         Classification.ABOVE_ABSOLUTE)

# (R) a clinician bolus above the largest screening dose (100 mcg) needs a reason; above twice it
# is refused.
BOLUS_FACTOR_ABSOLUTE = 2.0
# (R) the most a patient may add in 24 h, as a share of the basal daily dose.
PATIENT_SHARE_RECOMMENDED = 0.20
PATIENT_SHARE_ABSOLUTE = 0.50


def worst(items: list[tuple[Classification, str]]) -> tuple[Classification, str]:
    if not items:
        return Classification.WITHIN, "no guarded value changes"
    return max(items, key=lambda cr: ORDER.index(cr[0]))


@dataclass(frozen=True)
class ChangeReview(Gated):
    title: str
    rows: tuple[ReviewRow, ...]
    classification: Classification
    reason: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


def build(title: str, rows: list[ReviewRow], warnings: list[str] | None = None) -> ChangeReview:
    cls, reason = worst([(r.classification, r.reason) for r in rows
                         if r.classification is not None])
    return ChangeReview(title, tuple(rows), cls, reason, tuple(warnings or ()))


def row(name: str, current: str, proposed: str, check: tuple[Classification, str] | None = None
        ) -> ReviewRow:
    return ReviewRow(name, current, proposed, current != proposed,
                     check[0] if check else None, check[1] if check else "")


def bolus_guardrail(library: DrugLibrary) -> Guardrail:
    top = max(d.value for d in library.screening_doses)
    return Guardrail(1.0, 1.0, top, top * BOLUS_FACTOR_ABSOLUTE, "mcg", "clinician bolus")


def low_alarm_guardrail(profile: PumpProfile) -> Guardrail:
    # Below the manufacturer default residual the alarm may come too late (some patients
    # withdrew above 2 mL): allowed with a reason; outside the pump's range refused.
    return Guardrail(profile.low_alarm_min.value, profile.low_alarm_default.value,
                     profile.low_alarm_max.value, profile.low_alarm_max.value, "mL",
                     "low-reservoir alarm")


def patient_share_guardrail(basal_mcg_per_day: float) -> Guardrail:
    if basal_mcg_per_day <= 0:
        raise RefusedOperation("patient boluses need a running basal program to scale against",
                               code="no_program")
    return Guardrail(0.0, 0.0, PATIENT_SHARE_RECOMMENDED * basal_mcg_per_day,
                     PATIENT_SHARE_ABSOLUTE * basal_mcg_per_day, "mcg/day",
                     "patient boluses in 24 h")


def product_for(library: DrugLibrary, product: str, concentration: McgPerMl) -> Product:
    """The library product by name (case-insensitive), which must come in ``concentration``."""
    names = {p.name.lower(): p for p in library.products}
    key = product.strip().lower()
    found = names.get(key) or next((p for n, p in names.items() if n.split()[0] == key), None)
    if found is None:
        raise InvalidInput("product", product, "one of " + ", ".join(p.name for p in
                                                                      library.products))
    if not any(abs(c.value - concentration.value) <= 1e-9 * max(1.0, c.value)
               for c in found.concentrations):
        raise InvalidInput("concentration", str(concentration), f"{found.name} comes in "
                           + ", ".join(str(c) for c in found.concentrations))
    return found


def bolus_dose_check(library: DrugLibrary, dose: Micrograms) -> tuple[Classification, str]:
    return bolus_guardrail(library).classify(dose.value)
