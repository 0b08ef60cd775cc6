"""The safety kernel on a real pump controller (its own status report and event log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.devices import get_pump
from openitb.drugs import Context, load_library
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, zero_error_pump
from openitb.safety import (
    Actor,
    ClinicianBolus,
    Decision,
    Implant,
    LowAlarm,
    PatientFacts,
    ProgramChange,
    Refill,
    Review,
    Role,
    StopTherapy,
    WireCommand,
    bridge_bolus,
    history_from_report,
    load_permissions,
    priming_bolus,
    pump_state_from_status,
    review,
    review_token,
)
from openitb.sim.runner import command_from_wire
from openitb.therapy.guardrails import Classification
from openitb.therapy.prescription import Continuous, Flex, FlexStep, SingleBolus
from openitb.therapy.screening import screening_schedule
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
NURSE = Actor(Role.NURSE, "n")
DOCTOR = Actor(Role.PHYSICIAN, "d")
ADULT = PatientFacts("spinal")


def pump_at(dose: float, conc: float = 500.0, profile: str = "itb-20") -> PumpController:
    p = zero_error_pump(profile, T0)
    for c in (cmd.Refill(Milliliters(20), McgPerMl(conc)),
              cmd.Program(Continuous(McgPerDay(dose)), McgPerMl(conc)), cmd.Start()):
        assert p.handle(c).ok
    p.advance(T0 + timedelta(days=2))  # the implant day is outside the 24 h window
    return p


def kernel(p: PumpController, proposal: object, actor: Actor = DOCTOR,
           patient: PatientFacts = ADULT) -> Review:
    rep = {"serial": "S", **p.status_report()}
    return review(proposal, state=pump_state_from_status(rep),  # type: ignore[arg-type]
                  history=history_from_report(rep["history_24h"]), patient=patient, actor=actor)


def write(p: PumpController, rv: Review) -> None:
    for c in rv.commands:
        assert p.handle(command_from_wire(c)).ok, c


def test_every_rule_verdict_is_kept_and_the_role_rule_is_last() -> None:
    p = pump_at(400)
    rv = kernel(p, ProgramChange(Continuous(McgPerDay(440))), NURSE)
    rules = [v.rule for v in rv.verdicts]
    assert rules[-1] == "role.permission"
    assert {"pump.flow", "dose.daily_bounds", "dose.step_24h"} <= set(rules)
    assert all(v.source for v in rv.verdicts)
    assert rv.decision is Decision.ALLOWED and rv.commands[0].name == "program"
    assert rv.projection is not None and rv.projection.refill_by is not None


def test_chained_steps_are_judged_against_the_lowest_dose_of_the_window() -> None:
    p = pump_at(250)
    first = kernel(p, ProgramChange(Continuous(McgPerDay(347.5))), NURSE)
    assert first.classification is Classification.WITHIN
    write(p, first)
    p.advance(p.now + timedelta(minutes=2))
    second = kernel(p, ProgramChange(Continuous(McgPerDay(483))), NURSE)
    assert not second.classification.allowed
    step = next(v for v in second.verdicts if v.rule == "dose.step_24h")
    assert "250" in step.reason


def test_down_then_up_cannot_climb_faster_than_the_label() -> None:
    p = pump_at(400)
    write(p, kernel(p, ProgramChange(Continuous(McgPerDay(320))), NURSE))
    # From 320 +40 % is 448 (within against 320), but the decrease is judged from 400 too, and
    # an increase from the lowest of the window: 560 is +75 % from 320.
    rv = kernel(p, ProgramChange(Continuous(McgPerDay(560))), NURSE)
    assert rv.classification is not Classification.WITHIN


def test_children_get_their_own_step() -> None:
    p = pump_at(200)
    child = PatientFacts("spinal", child=True)
    adult_ok = kernel(p, ProgramChange(Continuous(McgPerDay(270))), NURSE, ADULT)
    child_rv = kernel(p, ProgramChange(Continuous(McgPerDay(270))), NURSE, child)
    assert adult_ok.classification is Classification.WITHIN  # +35 % spinal maintenance
    assert child_rv.classification is not Classification.WITHIN  # pediatric +20 %
    step = next(v for v in child_rv.verdicts if v.rule == "dose.step_24h")
    assert "(R)" in step.source
    assert PatientFacts("cerebral", age_years=8).population.value == "pediatric"


def test_very_small_child_screening_starts_at_25_mcg() -> None:
    lib = load_library()
    assert lib.first_screening_dose(12.0) == Micrograms(25)
    assert lib.first_screening_dose(30.0) == Micrograms(50)
    doses = [d.value for _, d in screening_schedule(T0, weight_kg=12.0)]
    assert doses == [25, 50, 75, 100]
    assert "(C)" in lib.small_child_source


def test_stop_and_zero_programs_are_stops_of_therapy_for_physicians_only() -> None:
    p = pump_at(300)
    for proposal in (StopTherapy(), ProgramChange(SingleBolus(Micrograms(100), Hours(1)))):
        nurse = kernel(p, proposal, NURSE)
        assert nurse.decision is Decision.FORBIDDEN_ROLE and nurse.stop_of_therapy
        doctor = kernel(p, proposal, DOCTOR)
        assert doctor.decision is Decision.NEEDS_OVERRIDE and doctor.override.required
        assert any("withdrawal" in w for w in doctor.warnings)
        assert doctor.override.roles == (Role.PHYSICIAN,)


def test_refill_concentration_change_bridge_longer_than_24h_needs_an_override() -> None:
    # The case: 500 -> 2000 mcg/mL at 100 mcg/day: the path needs ~44.9 h at the old
    # flow; the pump's longest bolus is 24 h.
    p = pump_at(100)
    rv = kernel(p, Refill(Milliliters(p.reservoir_estimate_nl / 1e6), "Gablofen",
                          McgPerMl(2000), Milliliters(20)))
    assert rv.decision is Decision.NEEDS_OVERRIDE
    assert rv.bridge is not None and rv.bridge.given and rv.bridge.duration_h == 24.0
    assert rv.bridge.unbridged_ml > 0
    names = [c.name for c in rv.commands]
    assert names == ["refill", "program", "bridge_bolus"]
    write(p, rv)  # the pump accepts every command of the plan
    assert p.bolus is not None


def test_overfill_and_discrepancy_are_in_the_chain() -> None:
    p = pump_at(400)
    over = kernel(p, Refill(Milliliters(p.reservoir_estimate_nl / 1e6), "Gablofen",
                            McgPerMl(500), Milliliters(25)))
    assert over.decision is Decision.REFUSED
    disc = kernel(p, Refill(Milliliters(0.5), "Gablofen", McgPerMl(500), Milliliters(20)),
                  NURSE)
    assert disc.decision is Decision.FORBIDDEN_ROLE
    assert any(v.rule == "refill.discrepancy" and v.classification.needs_override
               for v in disc.verdicts)


def test_low_alarm_and_implant_on_a_used_pump() -> None:
    p = pump_at(400)
    assert kernel(p, LowAlarm(Milliliters(1.5))).override.required
    rv = kernel(p, Implant(Continuous(McgPerDay(100)), "Gablofen", McgPerMl(500),
                           Milliliters(20)))
    assert rv.decision is Decision.REFUSED and rv.refusal_code == "not_new"


def test_patient_may_not_program() -> None:
    p = pump_at(400)
    rv = kernel(p, ProgramChange(Continuous(McgPerDay(410))), Actor(Role.PATIENT))
    assert rv.decision is Decision.FORBIDDEN_ROLE


def test_permission_table_is_data() -> None:
    perms = load_permissions()
    assert perms.by_action["implant"] == frozenset({Role.PHYSICIAN})
    assert not perms.by_classification[Classification.ABOVE_ABSOLUTE]


def test_reads_do_not_bump_the_version_and_writes_do() -> None:
    p = pump_at(400)
    v = p.state_version
    p.handle(cmd.ReadStatus())
    p.status_report()
    assert p.state_version == v
    assert p.handle(cmd.SetLowAlarm(Milliliters(3))).ok
    assert p.state_version == v + 1
    assert p.check_version(v) is not None and p.check_version(v + 1) is None


def test_bolus_history_is_reported_by_the_pump() -> None:
    p = pump_at(400)
    assert p.handle(cmd.ClinicianBolus(Micrograms(50), Hours(1))).ok
    h = history_from_report(p.recent_history(24))
    assert h.boluses_since(p.now - timedelta(hours=1)) == 50.0
    assert h.in_force_before == 400.0


# ---- properties ---------------------------------------------------------------------------
steps = st.lists(st.tuples(st.floats(0.5, 1.9), st.integers(1, 180)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(start=st.floats(150, 700), chain=steps, context=st.sampled_from(list(Context)),
       role=st.sampled_from([Role.NURSE, Role.PHYSICIAN]))
def test_cumulative_change_within_24h_never_exceeds_the_label_step(
        start: float, chain: list[tuple[float, int]], context: Context, role: Role) -> None:
    lib = load_library()
    p = pump_at(round(start, 1))
    ref = p.prescription.daily_dose().value  # type: ignore[union-attr]
    limit = lib.change_limit(ADULT.spasticity_origin, context)
    factor = lib.absolute_step_factor
    elapsed = 0
    for ratio, minutes in chain:
        elapsed += minutes
        if elapsed > 23 * 60:
            break
        p.advance(p.now + timedelta(minutes=minutes))
        cur = p.prescription.daily_dose().value  # type: ignore[union-attr]
        rv = kernel(p, ProgramChange(Continuous(McgPerDay(round(cur * ratio, 1))), context),
                    Actor(role))
        if rv.decision is Decision.ALLOWED or rv.decision is Decision.NEEDS_OVERRIDE:
            write(p, rv)
        new = p.prescription.daily_dose().value  # type: ignore[union-attr]
        hi, lo = 1 + limit.increase_max, 1 - limit.decrease_max
        if rv.decision is Decision.ALLOWED:  # within: the label step from the reference
            assert ref * lo - 1e-6 <= new <= ref * hi + 1e-6
        # with an override: never beyond the absolute step from the reference
        assert ref * max(0.0, 1 - factor * limit.decrease_max) - 1e-6 <= new \
            <= ref * (1 + factor * limit.increase_max) + 1e-6


stop_programs = st.one_of(
    st.builds(lambda d, h: SingleBolus(Micrograms(d), Hours(h)), st.floats(1, 300),
              st.floats(0.05, 24)),
    st.builds(lambda n: Flex(tuple(FlexStep(i * 3600, McgPerDay(0)) for i in range(n))),
              st.integers(1, 24)),
)


@settings(max_examples=40, deadline=None)
@given(rx=stop_programs, dose=st.floats(50, 900), role=st.sampled_from(list(Role)))
def test_a_stop_of_therapy_program_is_never_within(rx: object, dose: float, role: Role) -> None:
    p = pump_at(round(dose, 1))
    rv = kernel(p, ProgramChange(rx), Actor(role))  # type: ignore[arg-type]
    assert rv.stop_of_therapy
    assert rv.classification is not Classification.WITHIN
    assert rv.decision is not Decision.ALLOWED


@settings(max_examples=40, deadline=None)
@given(a=st.floats(100, 800), b=st.floats(100, 800), bump=st.booleans())
def test_token_changes_iff_commands_or_state_change(a: float, b: float, bump: bool) -> None:
    p = pump_at(400)
    ra = kernel(p, ProgramChange(Continuous(McgPerDay(round(a, 2)))))
    if bump:
        assert p.handle(cmd.AlarmTest()).ok  # a write: the state version moves
    rb = kernel(p, ProgramChange(Continuous(McgPerDay(round(b, 2)))))
    same = round(a, 2) == round(b, 2) and not bump
    assert (ra.token == rb.token) is same
    state = pump_state_from_status({"serial": "S", **p.status_report()})
    assert review_token(rb.commands, state.fingerprint()) == rb.token
    other = (WireCommand.of("stop"),)
    assert review_token(other, state.fingerprint()) != rb.token


profiles = st.sampled_from(["itb-10", "itb-20", "itb-40"])


@settings(max_examples=60, deadline=None)
@given(profile=profiles, length=st.floats(20, 150), dose=st.floats(20, 1500),
       old=st.sampled_from([50.0, 500.0, 1000.0, 2000.0]))
def test_priming_and_bridge_boluses_are_accepted_by_the_pump(profile: str, length: float,
                                                            dose: float, old: float) -> None:
    prof = get_pump(profile)
    path = prof.internal_volume.value + 0.0026 * length
    p = zero_error_pump(profile, T0, catheter_volume_nl=round(0.0026 * length * 1e6))
    flow = dose / old
    if not prof.min_flow.value <= flow <= prof.max_flow.value:
        return
    for c in (cmd.Refill(Milliliters(prof.capacity.value), McgPerMl(old)),
              cmd.Program(Continuous(McgPerDay(dose)), McgPerMl(old)), cmd.Start()):
        assert p.handle(c).ok
    prime = priming_bolus(prof, path)
    assert prime is not None and prime.flow_ml_per_hour <= prof.bolus_max_flow_ml_per_hour
    r = p.handle(cmd.PrimingBolus(Milliliters(prime.volume_ml), Hours(prime.hours)))
    assert r.ok, r.reason
    p.advance(p.now + timedelta(days=1, hours=1))
    split = bridge_bolus(prof, path, flow)
    if split.bolus is not None:
        r = p.handle(cmd.BridgeBolus(Milliliters(split.bolus.volume_ml),
                                     Hours(split.bolus.hours)))
        assert r.ok, r.reason
        assert split.unbridged_ml >= -1e-12
        assert split.bolus.seconds <= 86_400


@pytest.mark.parametrize("rx", [Continuous(McgPerDay(120))])
def test_clinician_bolus_review_names_the_pump_flow_limit(rx: object) -> None:
    p = pump_at(400, conc=50)
    rv = kernel(p, ClinicianBolus(Micrograms(100), Hours(0.05)))
    assert rv.decision is Decision.REFUSED
    assert any(v.rule == "bolus.flow" and "limit" in v.reason for v in rv.verdicts)
