"""The steps of daily dose the safety rules allow now: the programmer's step helper.

Pure. Each offered dose is judged by the kernel's own rules (:func:`rules.step_rule` from the
24 h reference and :func:`rules.daily_bounds_rule`), exactly as a review of it would be; only
doses both call "within" are offered, so the helper never offers what the review would flag.
The candidates are the label's step fractions for the patient's origin, population and
context (drugs.toml ``change_limits``) applied to the dose in force, and the edges of the
recommended range :func:`therapy.guardrails.check_change` gives from the reference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from openitb.drugs import Context, DrugLibrary, load_library
from openitb.safety import rules as r
from openitb.safety.history import History
from openitb.safety.patient import PatientFacts
from openitb.safety.state import PumpState
from openitb.therapy.guardrails import Classification, check_change
from openitb.units import McgPerDay


@dataclass(frozen=True)
class StepChoice:
    dose_per_day: float  # mcg/day
    change_pct: float  # from the dose in force now
    reason: str  # the step rule's verdict on it


@dataclass(frozen=True)
class StepChoices:
    context: Context
    current: float | None  # mcg/day in force now (None: no continuous program)
    label_step: str  # e.g. "+10 to 30 % or -20 % per 24 h"
    reference: str  # what the steps are judged from
    choices: tuple[StepChoice, ...]
    source: str


def _whole(x: float, toward: float) -> float:
    """A dose rounded toward ``toward`` (the dose in force): never past the step computed."""
    step = 1.0 if x >= 20 else 0.1
    n = x / step
    return round((math.floor(n + 1e-9) if x > toward else math.ceil(n - 1e-9)) * step, 1)


def step_choices(context: Context, state: PumpState, history: History, patient: PatientFacts,
                 at: datetime, library: DrugLibrary | None = None) -> StepChoices:
    lib = library or load_library()
    limit = lib.change_limit_for(patient.population, patient.spasticity_origin, context)
    label_step = (f"+{limit.increase_min * 100:g} to {limit.increase_max * 100:g} % or "
                  f"-{limit.decrease_max * 100:g} % per 24 h")
    current = (state.program.daily_dose().value
               if state.program is not None and state.program.repeats_daily else None)
    doses = r.step_reference(state, history, at)
    if current is None or current <= 0 or not doses:
        return StepChoices(context, current, label_step, "no continuous dose in the last 24 h: "
                           "a start of therapy is judged by the daily bounds", (), limit.source)
    lo_ref, hi_ref = min(doses), max(doses)
    reference = (f"{current:g} mcg/day in force" if lo_ref == hi_ref == current else
                 f"the doses in force in the last 24 h ({lo_ref:g} to {hi_ref:g} mcg/day): "
                 f"an increase from the lowest, a decrease from the highest")
    origin, pop = patient.spasticity_origin, patient.population
    up = check_change(McgPerDay(lo_ref), McgPerDay(lo_ref), origin, context, population=pop,
                      library=lib, limit=limit)
    down = check_change(McgPerDay(hi_ref), McgPerDay(hi_ref), origin, context, population=pop,
                        library=lib, limit=limit)
    fractions = (-limit.decrease_max, -limit.decrease_max / 2, limit.increase_min,
                 (limit.increase_min + limit.increase_max) / 2, limit.increase_max)
    candidates = {_whole(current * (1 + f), current) for f in fractions}
    candidates |= {_whole(down.recommended_min.value, current),
                   _whole(up.recommended_max.value, current)}
    choices = []
    for dose in sorted(c for c in candidates if c > 0 and abs(c - current) > 1e-9):
        step_v = r.step_rule(dose, context, state, history, patient, at, lib)
        daily_v = r.daily_bounds_rule(dose, history, patient, at, lib)
        if step_v.classification is Classification.WITHIN and (
                daily_v.classification is Classification.WITHIN):
            choices.append(StepChoice(dose, (dose - current) / current * 100, step_v.reason))
    return StepChoices(context, current, label_step, reference, tuple(choices), limit.source)
