"""The step helper (safety/steps.py) offers only doses the kernel's review calls within, judged
from the 24 h reference: after a step up today, the next offers are from the lowest dose of the
window, so chained steps never add up past the label."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.drugs import Context
from openitb.safety import (
    PatientFacts,
    ProgramChange,
    history_from_report,
    pump_state_from_status,
    step_choices,
)
from openitb.therapy.guardrails import Classification
from openitb.therapy.prescription import Continuous
from openitb.units import McgPerDay

from .test_kernel import DOCTOR, kernel, pump_at, write


def helper(p, context: Context, patient: PatientFacts = PatientFacts("spinal")):  # type: ignore[no-untyped-def]
    rep = {"serial": "S", **p.status_report()}
    state = pump_state_from_status(rep)
    return step_choices(context, state, history_from_report(rep["history_24h"]), patient,
                        state.time)


def test_offers_the_label_steps_for_the_context() -> None:
    p = pump_at(400)
    titration = [c.dose_per_day for c in helper(p, Context.TITRATION).choices]
    maintenance = [c.dose_per_day for c in helper(p, Context.MAINTENANCE).choices]
    assert 520 in titration and 560 not in titration  # spinal titration: up to +30 %
    assert 560 in maintenance  # spinal maintenance: up to +40 %
    assert min(titration) == 320  # -20 %


def test_after_a_step_today_the_offers_are_judged_from_the_lowest_dose() -> None:
    p = pump_at(400)
    write(p, kernel(p, ProgramChange(Continuous(McgPerDay(480)), Context.TITRATION)))
    p.advance(p.now + timedelta(minutes=2))
    offered = [c.dose_per_day for c in helper(p, Context.TITRATION).choices]
    assert offered and max(offered) <= 520  # +30 % of 400, not of 480
    assert "400 to 480" in helper(p, Context.TITRATION).reference


@settings(max_examples=25, deadline=None)
@given(st.integers(60, 900), st.sampled_from(list(Context)),
       st.sampled_from(["spinal", "cerebral"]))
def test_every_offer_is_within_in_the_kernels_review(dose: int, context: Context,
                                                      origin: str) -> None:
    p = pump_at(dose)
    patient = PatientFacts(origin)
    for c in helper(p, context, patient).choices:
        rv = kernel(p, ProgramChange(Continuous(McgPerDay(c.dose_per_day)), context), DOCTOR,
                    patient)
        assert rv.classification is Classification.WITHIN, (dose, c)
