"""Programmer workflows against a served pump (in-process transport, same frames as TCP)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.drugs import Context, Origin
from openitb.errors import InvalidInput, RefusedOperation
from openitb.programmer.link import PumpRefused, ReadbackMismatch
from openitb.pump import commands as cmd
from openitb.telemetry.session import Role
from openitb.therapy.prescription import Continuous, Flex, FlexStep
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import connect, implanted, new_pump, no, yes

SPINAL = {"origin": Origin.SPINAL, "context": Context.TITRATION}


def test_implant_programs_primes_and_starts() -> None:
    service, clock, prog, record = implanted()
    p = service.pump
    assert p.running and p.reservoir_conc == 500.0 and p.prescription == Continuous(McgPerDay(400))
    assert p.bolus is not None and p.bolus[2]  # the priming bolus replaces the basal rate
    kinds = [e["kind"] for e in p.log.entries]
    assert "command_PrimingBolus" in kinds
    assert record.changes[-1]["action"] == "implant" and record.changes[-1]["readback"] == "matches"


def test_interrogate_shows_projection_alarms_battery_and_log() -> None:
    service, clock, prog, _ = implanted()
    clock.advance(timedelta(days=10))
    view = prog.interrogate()
    assert view["state"] == "running"
    assert view["reservoir_estimate_ml"] == pytest.approx(20 - 0.426 - 8.0, abs=0.03)
    proj = view["projection"]
    assert proj["low_alarm_at"] < proj["empty_at"] and proj["refill_by"] < proj["low_alarm_at"]
    assert view["battery"]["days_left"] > 365 and view["battery"]["eri_at"] > view["time"]
    assert view["recent_log"] and view["steps"][0]["mcg_per_day"] == 400.0


def test_dose_change_within_recommended_needs_only_confirmation() -> None:
    service, clock, prog, record = implanted()
    out = prog.change_dose(McgPerDay(480), confirm=yes, **SPINAL)
    assert out.review.classification.value == "within"
    assert service.pump.prescription == Continuous(McgPerDay(480))
    assert record.changes[-1]["readback"] == "matches"


def test_unconfirmed_change_writes_nothing() -> None:
    service, clock, prog, record = implanted()
    before = service.pump.to_dict()["prescription"]
    with pytest.raises(RefusedOperation) as exc:
        prog.change_dose(McgPerDay(480), confirm=no, **SPINAL)
    assert exc.value.code == "unconfirmed"
    assert service.pump.to_dict()["prescription"] == before
    assert record.refusals[-1]["code"] == "unconfirmed"


def test_above_recommended_needs_reason_which_is_logged() -> None:
    service, clock, prog, record = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.change_dose(McgPerDay(560), confirm=yes, **SPINAL)
    assert exc.value.code == "override_required"
    assert service.pump.prescription == Continuous(McgPerDay(400))
    prog.change_dose(McgPerDay(560), confirm=yes, override_reason="severe night spasms", **SPINAL)
    assert service.pump.prescription == Continuous(McgPerDay(560))
    assert record.overrides[-1]["reason"] == "severe night spasms"
    assert record.overrides[-1]["classification"] == "above_recommended"


def test_dose_jump_beyond_absolute_is_refused() -> None:
    service, clock, prog, record = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.change_dose(McgPerDay(900), confirm=yes, override_reason="please allow", **SPINAL)
    assert exc.value.code == "guardrail_absolute"
    assert service.pump.prescription == Continuous(McgPerDay(400))


def test_cerebral_origin_has_tighter_titration_limits() -> None:
    service, clock, prog, _ = implanted()
    spinal = prog.review_change(Continuous(McgPerDay(500)), origin=Origin.SPINAL,
                                context=Context.TITRATION)
    cerebral = prog.review_change(Continuous(McgPerDay(500)), origin=Origin.CEREBRAL,
                                  context=Context.TITRATION)
    assert spinal.classification.value == "within"
    assert cerebral.classification.value == "above_recommended"


def test_flex_review_shows_each_step_per_hour_and_per_day() -> None:
    service, clock, prog, _ = implanted()
    # Meant as 60 mcg once in the morning, entered per hour: 60 mcg/h = 1440 mcg/day in one hour.
    flex = Flex((FlexStep(0, McgPerDay(380)), FlexStep(8 * 3600, McgPerDay(1440)),
                 FlexStep(9 * 3600, McgPerDay(380))))
    review = prog.review_change(flex, origin=Origin.SPINAL, context=Context.MAINTENANCE)
    step = next(r for r in review.rows if r.field == "step 2")
    assert "60 mcg/h" in step.proposed and "1440 mcg/day" in step.proposed
    out = prog.change_program(flex, confirm=yes, origin=Origin.SPINAL,
                              context=Context.MAINTENANCE)
    assert out.action == "flex_program" and service.pump.prescription == flex


def test_flex_steps_per_hour_everywhere_refused() -> None:
    service, clock, prog, _ = implanted()
    flex = Flex((FlexStep(0, McgPerDay(2400)), FlexStep(12 * 3600, McgPerDay(2400))))
    # The kernel refuses it (a Review with decision refused), no longer an input error.
    with pytest.raises(RefusedOperation) as exc:
        prog.change_program(flex, confirm=yes, origin=Origin.SPINAL, context=Context.TITRATION)
    assert exc.value.code == "guardrail_absolute" and "not mcg per hour" in str(exc.value)
    assert service.pump.prescription == Continuous(McgPerDay(400))


def test_readback_mismatch_names_the_difference() -> None:
    service, clock = new_pump()
    prog, _ = connect(service, clock)
    from openitb.therapy.prescription import Continuous as C
    prog.implant(C(McgPerDay(400)), product="Gablofen", concentration=McgPerMl(500),
                 volume=Milliliters(20), confirm=yes, origin=Origin.SPINAL)

    def corrupting(role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "program":  # a fault between the radio and the pump's memory
            args = {**args, "prescription": {"mode": "continuous", "dose": "440 mcg/day"}}
        return service.dispatch(role, name, args)

    bad, record = connect(service, clock, corrupting)
    with pytest.raises(ReadbackMismatch) as exc:
        bad.change_dose(McgPerDay(480), confirm=yes, **SPINAL)
    assert "program.dose: wrote '480.0 mcg/day', the pump reports '440.0 mcg/day'" in str(exc.value)
    assert record.changes[-1]["readback"] == "mismatch"


def test_refill_same_concentration_prints_dates_and_checks_discrepancy() -> None:
    service, clock, prog, record = implanted()
    clock.advance(timedelta(days=14))
    service.advance()
    expected = service.pump.reservoir_estimate_nl / 1e6
    out = prog.refill(withdrawn=Milliliters(round(expected, 1)), product="Gablofen",
                      concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)
    d = out.to_dict()
    assert not d["discrepancy"]["flagged"]
    assert d["low_alarm_at"] and d["refill_by"] < d["low_alarm_at"]
    assert service.pump.reservoir_estimate_nl == 20_000_000


def test_refill_discrepancy_beyond_threshold_needs_reason() -> None:
    service, clock, prog, record = implanted()
    clock.advance(timedelta(days=14))
    service.advance()
    expected = service.pump.reservoir_estimate_nl / 1e6
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(expected - 2.5), product="Gablofen",
                    concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)
    assert exc.value.code == "override_required" and "pocket fill" in exc.value.reason
    assert service.pump.reservoir_estimate_nl < 20_000_000  # nothing written
    prog.refill(withdrawn=Milliliters(expected - 2.5), product="Gablofen",
                concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes,
                override_reason="septum leak suspected, pocket checked: no swelling")
    assert record.overrides[-1]["action"] == "refill"


def test_refill_overfill_beyond_capacity_refused() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(19.5), product="Gablofen", concentration=McgPerMl(500),
                    volume=Milliliters(22), confirm=yes, override_reason="trust me please")
    assert exc.value.code == "guardrail_absolute" and "capacity" in exc.value.reason


def test_refill_wrong_product_concentration_refused() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(InvalidInput) as exc:
        prog.refill(withdrawn=Milliliters(19.5), product="Lioresal", concentration=McgPerMl(1000),
                    volume=Milliliters(20), confirm=yes)
    assert "Lioresal Intrathecal comes in" in str(exc.value)


def test_refill_concentration_change_reprograms_and_bridges() -> None:
    service, clock, prog, _ = implanted()
    clock.advance(timedelta(days=14))
    service.advance()
    expected = service.pump.reservoir_estimate_nl / 1e6
    out = prog.refill(withdrawn=Milliliters(expected), product="Gablofen",
                      concentration=McgPerMl(1000), volume=Milliliters(20), confirm=yes)
    p = service.pump
    assert p.program_conc == 1000.0 and p.prescription == Continuous(McgPerDay(400))
    assert out.extra["bridge"]["volume_ml"] == pytest.approx(0.426)
    assert p.bolus is not None and p.bolus[2]
    assert "command_BridgeBolus" in [e["kind"] for e in p.log.entries]


def test_declined_bridge_needs_reason() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(19.6), product="Gablofen", concentration=McgPerMl(1000),
                    volume=Milliliters(20), confirm=yes, bridge=False)
    assert exc.value.code == "override_required" and "without a bridge" in exc.value.reason


def test_program_with_other_concentration_than_reservoir_refused_by_pump() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(PumpRefused) as exc:
        prog.link.send("program", prescription={"mode": "continuous", "dose": "400 mcg/day"},
                       concentration="2000 mcg/mL")
    assert exc.value.code == "concentration_mismatch"


def test_clinician_bolus_guardrails() -> None:
    service, clock, prog, _ = implanted()
    clock.advance(timedelta(hours=2))
    with pytest.raises(RefusedOperation) as exc:
        prog.clinician_bolus(Micrograms(250), Hours(1), confirm=yes, override_reason="needed now")
    assert exc.value.code == "guardrail_absolute"
    prog.clinician_bolus(Micrograms(50), Hours(1), confirm=yes)
    assert service.pump.bolus is not None and not service.pump.bolus[2]


def test_low_alarm_below_default_needs_reason() -> None:
    service, clock, prog, record = implanted()
    with pytest.raises(RefusedOperation):
        prog.set_low_alarm(Milliliters(1.5), confirm=yes)
    prog.set_low_alarm(Milliliters(3), confirm=yes)
    assert service.pump.low_threshold_nl == 3_000_000


def test_patient_limits_guardrail_and_readback() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.set_patient_limits(dose=Micrograms(50), duration=Hours(0.25), lockout=Hours(3),
                                max_per_day=6, confirm=yes, override_reason="wants more")
    assert exc.value.code == "guardrail_absolute"  # 300 mcg/day is 75 % of 400
    prog.set_patient_limits(dose=Micrograms(20), duration=Hours(0.25), lockout=Hours(3),
                            max_per_day=4, confirm=yes)
    assert service.book.limits is not None and service.book.limits.max_per_day == 4


def test_post_mri_check_restarts_a_pump_stopped_for_the_scan() -> None:
    service, clock, prog, _ = implanted()
    prog.link.send("stop")
    service.inject(cmd.MriStart())
    clock.advance(timedelta(minutes=40))
    service.inject(cmd.MriEnd())
    clock.advance(timedelta(hours=25))
    result = prog.post_mri_check(confirm=yes)
    assert result["restarted"] and service.pump.running


def test_post_mri_check_reports_stall_not_recovered() -> None:
    service, clock, prog, _ = implanted()
    service.inject(cmd.MriStart())
    result = prog.post_mri_check(confirm=yes)
    assert result["recovered"] is False and "stalled" in result["message"]


def test_replacement_plan_from_eri() -> None:
    service, clock, prog, _ = implanted()
    plan = prog.replacement_plan()
    assert plan["schedule_from"] < plan["replace_by"] < plan["battery"]["end_of_service_at"]
    assert plan["urgency"] == "plan ahead"


def test_session_record_written_atomically(tmp_path: Path) -> None:
    service, clock, prog, record = implanted()
    prog.change_dose(McgPerDay(560), confirm=yes, override_reason="severe night spasms", **SPINAL)
    path = tmp_path / "rec" / "session.json"
    record.write(path, clock)
    doc = json.loads(path.read_text())
    assert doc["who"] == "dr test" and doc["pump"] == "T-1"
    assert [c["action"] for c in doc["changes"]] == ["implant", "dose_change"]
    assert doc["overrides"][0]["reason"] == "severe night spasms"
    assert doc["reads"] and doc["ended"]
    assert not list(path.parent.glob("*.tmp"))


def test_refill_more_withdrawn_than_expected_flags_under_infusion() -> None:
    service, clock, prog, _ = implanted()
    clock.advance(timedelta(days=14))
    service.advance()
    expected = service.pump.reservoir_estimate_nl / 1e6
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(expected + 1.5), product="Gablofen",
                    concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)
    assert exc.value.code == "override_required" and "under-infusion" in exc.value.reason


def test_change_on_a_stopped_pump_warns_it_will_not_infuse() -> None:
    service, clock, prog, _ = implanted()
    prog.link.send("stop")
    review = prog.review_change(Continuous(McgPerDay(440)), **SPINAL)
    assert any("will not infuse until the pump is started" in w for w in review.warnings)


def test_implant_refused_on_a_pump_that_has_a_program() -> None:
    service, clock, prog, _ = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.implant(Continuous(McgPerDay(100)), product="Gablofen", concentration=McgPerMl(500),
                     volume=Milliliters(20), confirm=yes, origin=Origin.SPINAL)
    assert exc.value.code == "not_new"
    assert service.pump.prescription == Continuous(McgPerDay(400))


def test_program_before_any_drug_is_in_the_pump_refused() -> None:
    service, clock = new_pump()
    prog, _ = connect(service, clock)
    with pytest.raises(RefusedOperation) as exc:
        prog.change_dose(McgPerDay(100), confirm=yes, **SPINAL)
    assert exc.value.code == "no_drug" and service.pump.prescription is None


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0, max_value=3000, allow_nan=False),
       st.sampled_from(list(Origin)), st.sampled_from(list(Context)))
def test_any_dose_is_written_and_read_back_exactly_or_refused_with_nothing_written(
        dose: float, origin: Origin, context: Context) -> None:
    service, clock, prog, record = implanted()
    before = service.pump.to_dict()["prescription"]
    try:
        prog.change_dose(McgPerDay(dose), confirm=yes, origin=origin, context=context,
                         override_reason="documented clinical reason")
    except (RefusedOperation, InvalidInput):
        assert service.pump.to_dict()["prescription"] == before
        return
    assert service.pump.prescription == Continuous(McgPerDay(dose))
    assert record.changes[-1]["readback"] == "matches"


def test_confirmation_prompt_needs_the_word_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    from openitb.commands.programmer import _confirmer

    service, clock, prog, _ = implanted()
    review = prog.review_change(Continuous(McgPerDay(440)), **SPINAL)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    for answer, expected in (("yes", True), ("y", False), ("", False), ("YES ", True)):
        monkeypatch.setattr("builtins.input", lambda prompt, a=answer: a)
        assert _confirmer(False, False)(review) is expected
    assert _confirmer(True, True)(review) is True


def test_failure_part_way_through_a_change_is_recorded_and_named() -> None:
    service, clock, prog, _ = implanted()

    def failing(role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "bridge_bolus":
            from openitb.telemetry.session import CommandError
            raise CommandError("refused", "motor fault")
        return service.dispatch(role, name, args)

    clock.advance(timedelta(hours=2))
    service.advance()
    bad, record = connect(service, clock, failing)
    with pytest.raises(RefusedOperation) as exc:
        bad.refill(withdrawn=Milliliters(service.pump.reservoir_estimate_nl / 1e6), product="Gablofen", concentration=McgPerMl(1000),
                   volume=Milliliters(20), confirm=yes)
    assert "written before the failure: refill, program" in exc.value.reason
    assert record.changes[-1]["failed_at"] == "bridge_bolus"


def test_internal_fault_in_the_pump_is_answered_not_dropped() -> None:
    service, clock, prog, _ = implanted()
    service._table["alarm_test"] = ({}, lambda role, args: 1 // 0)  # type: ignore[dict-item]
    with pytest.raises(PumpRefused) as exc:
        prog.link.send("alarm_test")
    assert exc.value.code == "internal_error"
    assert prog.link.read_status()["state"] == "running"


def test_replacement_plan_when_the_eri_is_reached() -> None:
    service, clock, prog, _ = implanted()
    p = service.pump
    # Leave about 60 days of charge at this program.
    per_day = p.profile.battery_idle_ua * 24 + p.profile.battery_stroke_uah * p.daily_strokes()
    p.battery_used_uah = p.profile.battery_capacity_mah * 1000 - 60 * per_day
    plan = prog.replacement_plan()
    assert plan["battery"]["eri_reached"] and plan["urgency"].startswith("the ERI")
    assert plan["replace_by"] <= plan["battery"]["end_of_service_at"]
    view = prog.interrogate()
    assert view["battery"]["days_left"] == pytest.approx(60, abs=1)


def test_pocket_fill_at_a_refill_is_caught_at_the_next_one() -> None:
    service, clock, prog, record = implanted()
    service.inject(cmd.PocketFill(Milliliters(3)))  # 3 mL went beside the septum
    clock.advance(timedelta(days=10))
    service.advance()
    withdrawn = service.pump.reservoir_true_nl / 1e6  # what the syringe really gets back
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(withdrawn), product="Gablofen",
                    concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)
    assert exc.value.code == "override_required"
    assert "pocket fill" in exc.value.reason and "overdose" in exc.value.reason
    assert record.refusals[-1]["code"] == "override_required"


def test_catheter_occlusion_shows_as_more_withdrawn_than_expected() -> None:
    service, clock, prog, _ = implanted()
    clock.advance(timedelta(days=1))
    service.advance()
    service.inject(cmd.CatheterFault("occlusion"))  # the motor turns, nothing moves
    clock.advance(timedelta(days=10))
    service.advance()
    withdrawn = service.pump.reservoir_true_nl / 1e6
    assert withdrawn - service.pump.reservoir_estimate_nl / 1e6 > 7
    with pytest.raises(RefusedOperation) as exc:
        prog.refill(withdrawn=Milliliters(withdrawn), product="Gablofen",
                    concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)
    assert "under-infusion" in exc.value.reason and "withdrawal" in exc.value.reason


def test_stopping_infusion_always_needs_a_reason_and_start_resumes() -> None:
    service, clock, prog, record = implanted()
    with pytest.raises(RefusedOperation) as exc:
        prog.stop(confirm=yes)
    assert exc.value.code == "override_required" and "withdrawal" in exc.value.reason
    assert service.pump.running
    prog.stop(confirm=yes, override_reason="MRI at 14:00, restart after the scan")
    assert not service.pump.running
    assert record.overrides[-1]["action"] == "stop"
    prog.start(confirm=yes)
    assert service.pump.running
