"""Daily programs advanced a day per closed-form span (across their step boundaries) deliver the
same strokes at the same times as the step-by-step path and as a per-second reference."""

from __future__ import annotations

import dataclasses
import math
import os
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from openitb.devices import get_pump
from openitb.pump import battery
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.therapy.prescription import DAY_S, Flex, FlexStep, Prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import T0

SETTINGS = settings(max_examples=int(os.environ.get("PUMP_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

doses = st.sampled_from([100.0, 200.0, 350.5, 600.0, 800.0, 1234.5, 2000.0])
concs = st.sampled_from([500.0, 1000.0, 2000.0])


@st.composite
def flex_programs(draw: Any) -> Prescription:
    starts = sorted(draw(st.sets(st.integers(0, 24 * 60 - 1), min_size=1, max_size=24)))
    steps = tuple(FlexStep(s * 60, McgPerDay(draw(doses))) for s in starts)
    return Flex(steps)


events = st.one_of(
    st.just(cmd.Stop()), st.just(cmd.Start()), st.just(cmd.MriStart()), st.just(cmd.MriEnd()),
    st.just(cmd.PowerOnReset()),
    st.builds(cmd.CatheterFault, st.sampled_from(["none", "occlusion", "disconnection"]),
              st.floats(0, 110)),
    st.builds(cmd.CatheterFault, st.just("kink"), st.floats(0, 110), st.floats(0.01, 0.99)),
    st.builds(cmd.CatheterFault, st.just("leak"), st.floats(0, 110), st.floats(0.01, 1.0)),
    st.builds(lambda v: cmd.Refill(Milliliters(v), McgPerMl(1000.0)), st.floats(0, 40)),
    st.builds(lambda v: cmd.SetLowAlarm(Milliliters(v)), st.sampled_from([1.0, 2.0, 4.0, 9.0])),
    st.builds(lambda d: cmd.ClinicianBolus(Micrograms(d), Hours(1)), st.sampled_from([10.0, 50.0])),
    st.builds(lambda v: cmd.BridgeBolus(Milliliters(v), Hours(2)), st.sampled_from([0.2, 0.43])),
    st.builds(lambda h: cmd.SetClock(T0 + timedelta(hours=h)), st.integers(-30, 30)),
)
# (seconds to advance, then a command); spans from a few seconds to a month.
timeline = st.lists(st.tuples(st.integers(1, 30 * DAY_S), events), max_size=10)


def build(seed: int, rx: Prescription, conc: float, volume: float, battery_mah: float | None,
          merge: bool) -> PumpController:
    profile = get_pump("itb-40")
    if battery_mah is not None:  # a small battery brings ERI and depletion within the timeline
        profile = dataclasses.replace(profile, battery_capacity_mah=battery_mah)
    p = PumpController.manufacture(profile, T0, np.random.default_rng(seed))
    p.merge_daily_spans = merge
    p.handle(cmd.Refill(Milliliters(volume), McgPerMl(conc)))
    p.handle(cmd.Program(rx, McgPerMl(conc)))  # refused outside the pump's flow range
    p.handle(cmd.Start())
    return p


def observable(p: PumpController) -> dict[str, Any]:
    """The pump's state, with the float sums and the battery-depletion time set apart: the
    battery is a float sum, so the second it reaches zero may differ by a few between two span
    groupings (as it already does between two command interleavings)."""
    d = p.to_dict()
    battery = d.pop("battery_used_uah")
    mcg = (d.pop("delivered_mcg"), d.pop("tissue_mcg"))
    depleted: list[datetime] = []

    def when(at: str, what: dict[str, Any]) -> str:
        if what.get("reason") != "battery depleted":
            return at
        depleted.append(datetime.fromisoformat(at))
        return "battery depleted"

    alarms = [{**a, "raised_at": when(a["raised_at"], a)} for a in d.pop("alarms")]
    log = d.pop("log")
    entries = [(e["seq"], when(e["at"], e.get("data") or {}), e["kind"], e["data"])
               for e in log["entries"]]
    return {"exact": d, "alarms": alarms, "log": (entries, log["dropped"]), "battery": battery,
            "mcg": mcg, "depleted": depleted}


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rx=flex_programs(), conc=concs,
       volume=st.floats(0.5, 40.0), battery_mah=st.sampled_from([None, 0.5, 2.0, 8.0]),
       steps=timeline)
def test_merged_spans_match_the_step_by_step_path(seed: int, rx: Prescription, conc: float,
                                                  volume: float, battery_mah: float | None,
                                                  steps: list[tuple[int, Any]]) -> None:
    fast = build(seed, rx, conc, volume, battery_mah, merge=True)
    assume(fast.prescription is not None)
    slow = build(seed, rx, conc, volume, battery_mah, merge=False)
    for dt, command in [*steps, (120 * DAY_S, cmd.ReadStatus())]:
        fast.advance(fast.now + timedelta(seconds=dt))
        slow.advance(slow.now + timedelta(seconds=dt))
        assert fast.handle(command).ok == slow.handle(command).ok
        f, s = observable(fast), observable(slow)
        # Strokes, accumulator, reservoirs, alarms with their times, the event log: identical.
        assert f["exact"] == s["exact"]
        assert f["alarms"] == s["alarms"]
        assert f["log"] == s["log"]
        assert len(f["depleted"]) == len(s["depleted"])
        assert all(abs(a - b) <= timedelta(minutes=1)
                   for a, b in zip(f["depleted"], s["depleted"], strict=True))
        # Sums of floats taken over different spans: equal to rounding (and to the seconds of
        # idle drain by which the depletion time may differ, see _depletion_second).
        minute = 60 * battery.idle_uah_per_s(fast.profile)
        assert f["battery"] == pytest.approx(s["battery"], rel=1e-9, abs=minute)
        assert f["mcg"] == pytest.approx(s["mcg"], rel=1e-9, abs=1e-9)


def per_second_strokes(rx: Prescription, conc: float, stroke_nl: int, tod0: int,
                       seconds: int) -> int:
    """Step every second with an exact integer accumulator (rates over a common denominator)."""
    rates = [Fraction(seg.dose_per_day.value) * 1_000_000 / (Fraction(conc) * DAY_S * stroke_nl)
             for seg in rx.segments()]
    den = math.lcm(*(r.denominator for r in rates))
    per_tod = [0] * DAY_S
    for seg, r in zip(rx.segments(), rates, strict=True):
        per_tod[seg.start_s:seg.end_s] = [int(r * den)] * (seg.end_s - seg.start_s)
    acc = 0
    for second in range(seconds):
        acc += per_tod[(tod0 + second) % DAY_S]
    return acc // den


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rx=flex_programs(), conc=concs, offset_h=st.integers(0, 23),
       seconds=st.integers(1, 2 * DAY_S))
def test_strokes_agree_with_a_per_second_reference(rx: Prescription, conc: float, offset_h: int,
                                                   seconds: int) -> None:
    profile = get_pump("itb-40")
    p = PumpController(profile, T0, true_stroke_nl=profile.stroke_volume_nl)
    p.handle(cmd.Refill(Milliliters(40), McgPerMl(conc)))
    assume(p.handle(cmd.Program(rx, McgPerMl(conc))).ok)
    p.handle(cmd.SetClock(T0 + timedelta(hours=offset_h)))
    p.handle(cmd.Start())
    p.advance(T0 + timedelta(seconds=seconds))
    assert p.strokes == per_second_strokes(rx, conc, profile.stroke_volume_nl,
                                           offset_h * 3600, seconds)


def test_a_flex_month_takes_one_span_a_day() -> None:
    """The cost is in spans: a 24-step program no longer takes 24 spans a day."""
    rx = Flex(tuple(FlexStep(h * 3600, McgPerDay(50 + 5 * h)) for h in range(24)))
    spans = {}
    for merge in (True, False):
        p = build(1, rx, 1000.0, 40.0, None, merge)
        p.record_history = False
        calls = 0
        real = p._after_span

        def counting(*a: Any, real: Any = real) -> None:
            nonlocal calls
            calls += 1
            real(*a)

        p._after_span = counting  # type: ignore[method-assign]
        p.advance(T0 + timedelta(days=30))
        spans[merge] = calls
    assert spans[True] <= 31  # a span a day
    assert spans[False] >= 24 * 30
