"""Hand-worked pump scenarios."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from openitb.devices import get_pump
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, draw_true_stroke_nl
from openitb.therapy.prescription import Flex, FlexStep, SingleBolus
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import T0, days, running_pump


def _raised(p: PumpController, kind: str) -> datetime:
    a = [a for a in p.alarms.history if a.kind == kind]
    assert a, f"no {kind} alarm"
    return datetime.fromisoformat(a[0].raised_at)


def test_40ml_2000_800_low_at_day_95_empty_at_day_100() -> None:
    # 800 mcg/day / 2000 mcg/mL = 0.4 mL/day; (40 - 2) / 0.4 = 95 days; 40 / 0.4 = 100 days.
    p = running_pump()
    p.advance(days(120))
    stroke_s = timedelta(seconds=86400 / 400)  # 400 strokes of 1 uL a day
    assert abs(_raised(p, "low_reservoir") - days(95)) <= stroke_s
    assert abs(_raised(p, "empty_reservoir") - days(100)) <= stroke_s
    assert p.state == "empty"
    assert p.delivered_nl == 40_000_000 and p.strokes == 40_000
    assert abs(p.delivered_mcg - 80_000) < 1e-6
    assert _raised(p, "empty_reservoir").isoformat() == days(100).isoformat()


def test_low_alarm_raised_at_the_crossing_stroke_even_mid_advance() -> None:
    p = running_pump()
    p.advance(days(94.99))
    assert p.alarms.active("low_reservoir") is None
    p.advance(days(95))
    assert p.alarms.active("low_reservoir") is not None
    assert p.reservoir_estimate_nl == 2_000_000


def test_acknowledge_silences_but_does_not_clear_and_refill_clears() -> None:
    p = running_pump()
    p.advance(days(96))
    assert p.alarms.tone() == "single_tone"
    assert p.handle(cmd.AcknowledgeAlarm("low_reservoir")).ok
    a = p.alarms.active("low_reservoir")
    assert a is not None and a.acknowledged_at is not None and a.cleared_at is None
    assert p.alarms.tone() == "silent"
    assert not p.handle(cmd.AcknowledgeAlarm("low_reservoir")).ok
    r = p.handle(cmd.Refill(Milliliters(40), McgPerMl(2000)))
    assert r.ok and abs(r.data["expected_ml"] - 1.6) < 1e-9
    assert p.alarms.active("low_reservoir") is None
    assert p.alarms.history[0].cleared_at is not None


def test_flex_morning_step_delivers_on_the_pump_clock() -> None:
    # 400 mcg/day all day except 08:00-12:00 at 1600 mcg/day (at 1000 mcg/mL).
    rx = Flex((FlexStep(0, McgPerDay(400)), FlexStep(8 * 3600, McgPerDay(1600)),
               FlexStep(12 * 3600, McgPerDay(400))))
    p = running_pump(conc=1000.0, rx=rx)
    p.advance(T0 + timedelta(hours=8))
    assert p.strokes == 133  # 0.4 mL/day * 8/24 = 133.33 uL
    p.advance(T0 + timedelta(hours=12))
    assert p.strokes == 400  # + 1.6 mL/day * 4/24 = 266.67 uL
    p.advance(days(10))
    assert p.strokes == 6000  # daily 400*20/24 + 1600*4/24 = 600 mcg = 600 uL


def test_set_clock_shifts_the_flex_schedule() -> None:
    rx = Flex((FlexStep(0, McgPerDay(400)), FlexStep(8 * 3600, McgPerDay(1600)),
               FlexStep(12 * 3600, McgPerDay(400))))
    p = running_pump(conc=1000.0, rx=rx)
    assert p.handle(cmd.SetClock(T0 + timedelta(hours=8))).ok  # pump says 08:00 at true midnight
    p.advance(T0 + timedelta(hours=4))
    assert p.strokes == 266


def test_clinician_bolus_adds_on_top_of_basal() -> None:
    p = running_pump(conc=1000.0, dose=240.0)  # 10 uL/h basal
    assert p.handle(cmd.ClinicianBolus(Micrograms(100), Hours(1))).ok
    p.advance(T0 + timedelta(hours=2))
    assert p.strokes == 20 + 100


def test_single_bolus_then_stops() -> None:
    p = running_pump(conc=500.0, rx=SingleBolus(Micrograms(50), Hours(1)))
    p.advance(days(1))
    assert p.strokes == 100 and p.state == "stopped"


def test_stopped_delivers_nothing_and_refusals_change_nothing() -> None:
    p = running_pump()
    assert p.handle(cmd.Stop()).ok
    before = p.to_dict()
    r = p.handle(cmd.Stop())
    assert not r.ok and r.reason
    r = p.handle(cmd.Refill(Milliliters(41), McgPerMl(2000)))
    assert not r.ok and "capacity" in r.reason
    r = p.handle(cmd.SetLowAlarm(Milliliters(20)))
    assert not r.ok
    assert p.to_dict() == before
    p.advance(days(10))
    assert p.strokes == 0


def test_occlusion_pump_strokes_patient_gets_nothing() -> None:
    p = running_pump()
    p.handle(cmd.CatheterFault("occlusion"))
    p.advance(days(10))
    assert p.strokes == 4000 and p.delivered_nl == 0
    assert p.reservoir_true_nl == 40_000_000 and p.reservoir_estimate_nl == 36_000_000


def test_disconnection_goes_to_tissue() -> None:
    p = running_pump()
    p.handle(cmd.CatheterFault("disconnection"))
    p.advance(days(10))
    assert p.delivered_nl == 0 and p.tissue_nl == 4_000_000


def test_concentration_change_reaches_tip_after_path_volume() -> None:
    p = running_pump(conc=500.0, dose=400.0)  # 0.8 mL/day; path 0.14 + 0.286 mL
    p.advance(days(1))
    p.handle(cmd.Refill(Milliliters(20), McgPerMl(2000)))
    p.handle(cmd.Program(p.prescription, McgPerMl(2000)))  # type: ignore[arg-type]
    # Without a bridge bolus the old drug is pushed out at the new, slower rate first.
    path_ul = p.catheter.volume_nl // 1000
    before = p.delivered_mcg
    p.advance(days(1) + timedelta(seconds=round(path_ul * 86400 / 200) - 600))
    assert p.catheter.tip_concentration() == 500.0
    assert p.delivered_mcg - before < 2.2 * 100  # 0.426 mL at 500 mcg/mL: a quarter dose/day
    p.advance(days(5))
    assert p.catheter.tip_concentration() == 2000.0


def test_mri_stalls_then_needs_interrogation_on_itb40() -> None:
    p = running_pump()
    p.advance(days(1))
    p.handle(cmd.MriStart())
    assert p.state == "motor_stall" and p.alarms.active("motor_stall")
    p.advance(days(1) + timedelta(hours=1))
    p.handle(cmd.MriEnd())
    p.advance(days(3))
    assert p.strokes == 400 and p.state == "motor_stall"  # awaiting interrogation
    assert p.handle(cmd.ReadStatus()).data["state"] == "running"
    assert p.alarms.history[-1].cleared_at is not None
    p.advance(days(4))
    assert p.strokes == 800


def test_mri_auto_resume_on_itb20() -> None:
    p = running_pump(volume_ml=20.0, profile="itb-20")
    p.handle(cmd.MriStart())
    p.advance(T0 + timedelta(hours=1))
    p.handle(cmd.MriEnd())
    p.advance(days(1) + timedelta(hours=1))  # recovery 24 h, then 0 h of delivery
    assert p.strokes == 0
    p.advance(days(2) + timedelta(hours=1))
    assert p.strokes == 400 and p.state == "running"


def test_eri_then_end_of_service_at_max_service_life() -> None:
    p = running_pump(conc=2000.0, dose=100.0)
    for year in range(1, 8):
        p.advance(days(365 * year))
        if p.empty:
            p.handle(cmd.Refill(Milliliters(40), McgPerMl(2000)))
    p.advance(days(365.25 * 7 + 1))
    eri = _raised(p, "eri")
    eos = _raised(p, "end_of_service")
    assert eri < eos and p.state == "end_of_service"
    assert (eos - eri).days <= 90
    n = p.strokes
    p.advance(days(365.25 * 7 + 30))
    assert p.strokes == n
    assert not p.handle(cmd.Start()).ok


def test_battery_depletion_ends_service() -> None:
    prof = get_pump("itb-40")
    from dataclasses import replace
    small = replace(prof, battery_capacity_mah=5.0)
    p = PumpController(small, T0, true_stroke_nl=1000)
    p.handle(cmd.Refill(Milliliters(40), McgPerMl(2000)))
    p.handle(cmd.Program(__import__("openitb.therapy.prescription", fromlist=["Continuous"]).Continuous(McgPerDay(800)), McgPerMl(2000)))
    p.handle(cmd.Start())
    p.advance(days(60))
    assert p.eos and p.alarms.active("eri") is not None
    assert p.alarms.active("end_of_service") is not None


def test_true_stroke_inside_tolerance_and_seeded() -> None:
    prof = get_pump("itb-40")
    draws = {draw_true_stroke_nl(prof, np.random.default_rng(s)) for s in range(200)}
    assert min(draws) >= 855 and max(draws) <= 1145 and len(draws) > 50
    assert draw_true_stroke_nl(prof, np.random.default_rng(7)) == draw_true_stroke_nl(
        prof, np.random.default_rng(7))


def test_power_on_reset_stops_with_memory_alarm() -> None:
    p = running_pump()
    p.handle(cmd.PowerOnReset())
    p.advance(days(2))
    assert p.strokes == 0 and p.alarms.active("memory_error") is not None
    assert p.handle(cmd.Start()).ok
    assert p.alarms.active("memory_error") is None


def test_telemetry_draws_battery() -> None:
    p = running_pump()
    used = p.battery_used_uah
    p.handle(cmd.ReadStatus())
    assert p.battery_used_uah > used
    env = p.battery_used_uah
    p.handle(cmd.CatheterFault("none"))
    assert p.battery_used_uah == env


def _concentration_change(bridge: bool) -> tuple[float, float]:
    """500 -> 2000 mcg/mL at 400 mcg/day; mcg at the tip over the first 24 h after the change."""
    p = running_pump(conc=500.0, dose=400.0)  # old flow 0.8 mL/day
    p.advance(days(1))
    p.handle(cmd.Refill(Milliliters(20), McgPerMl(2000)))
    p.handle(cmd.Program(p.prescription, McgPerMl(2000)))  # type: ignore[arg-type]
    path_ml = p.catheter.volume_nl / 1e6
    hours = path_ml / 0.8 * 24  # the path volume at the old flow
    if bridge:
        assert p.handle(cmd.BridgeBolus(Milliliters(path_ml), Hours(hours))).ok
    before = p.delivered_mcg
    p.advance(days(2))
    return p.delivered_mcg - before, hours


def test_bridge_bolus_keeps_the_dose_at_the_tip() -> None:
    with_bridge, hours = _concentration_change(True)
    without, _ = _concentration_change(False)
    assert hours < 24
    # With the bridge: old drug at the old flow, then the new drug at the new flow: 400 mcg/day.
    assert abs(with_bridge - 400) <= 2 * 2000 / 1000
    # Without it the old, weaker drug crawls out at the new, slower flow: a quarter of the dose.
    assert without < 0.3 * 400


def test_pump_low_alarm_agrees_with_refill_projection() -> None:
    from openitb.devices import get_pump
    from openitb.therapy.prescription import Continuous
    from openitb.therapy.refill import project_refill

    proj = project_refill(Continuous(McgPerDay(800)), get_pump("itb-40"), Milliliters(40),
                          McgPerMl(2000), T0)
    p = running_pump()
    p.advance(days(120))
    assert proj.low_alarm_at is not None
    assert abs(_raised(p, "low_reservoir") - proj.low_alarm_at) <= timedelta(seconds=216)
