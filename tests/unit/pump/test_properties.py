"""Hypothesis properties of the pump controller over generated programs and event sequences."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openitb.devices import get_pump
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.therapy.prescription import Continuous, Flex, FlexStep, Prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import T0, programmed_strokes

SETTINGS = settings(max_examples=int(os.environ.get("PUMP_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

doses = st.sampled_from([200.0, 350.5, 600.0, 800.0, 1234.5, 2000.0])
concs = st.sampled_from([500.0, 1000.0, 2000.0])


@st.composite
def prescriptions(draw: Any) -> Prescription:
    if draw(st.booleans()):
        return Continuous(McgPerDay(draw(doses)))
    starts = sorted(draw(st.sets(st.integers(0, 24 * 4 - 1), min_size=1, max_size=24)))
    return Flex(tuple(FlexStep(s * 900, McgPerDay(draw(doses))) for s in starts))


events = st.one_of(
    st.just(cmd.Stop()), st.just(cmd.Start()), st.just(cmd.MriStart()), st.just(cmd.MriEnd()),
    st.just(cmd.PowerOnReset()), st.just(cmd.ReadStatus()),
    st.builds(cmd.CatheterFault, st.sampled_from(["none", "occlusion", "disconnection"]),
              st.floats(0, 110)),
    st.builds(cmd.CatheterFault, st.just("kink"), st.floats(0, 110), st.floats(0.01, 0.99)),
    st.builds(cmd.CatheterFault, st.just("leak"), st.floats(0, 110), st.floats(0.01, 1.0)),
    st.builds(lambda v: cmd.Refill(Milliliters(v), McgPerMl(1000.0)), st.floats(0, 40)),
    st.builds(lambda v: cmd.PocketFill(Milliliters(v)), st.floats(0.001, 20)),
    st.builds(lambda v: cmd.SetLowAlarm(Milliliters(v)), st.sampled_from([1.0, 2.0, 4.0, 9.0])),
    st.builds(lambda d: cmd.ClinicianBolus(Micrograms(d), Hours(1)), st.sampled_from([10.0, 50.0])),
    st.builds(lambda v: cmd.BridgeBolus(Milliliters(v), Hours(2)), st.sampled_from([0.2, 0.43])),
    st.builds(cmd.AcknowledgeAlarm, st.sampled_from(["low_reservoir", "empty_reservoir"])),
)
timeline = st.lists(st.tuples(st.integers(1, 20 * 86400), events), max_size=12)


def build(seed: int, rx: Prescription, conc: float, volume: float) -> PumpController:
    p = PumpController.manufacture(get_pump("itb-40"), T0, np.random.default_rng(seed))
    p.handle(cmd.Refill(Milliliters(volume), McgPerMl(conc)))
    p.handle(cmd.Program(rx, McgPerMl(conc)))
    p.handle(cmd.Start())
    return p


def conserved(p: PumpController) -> bool:
    return p.filled_nl - p.withdrawn_nl == p.reservoir_true_nl + p.delivered_nl + p.tissue_nl


def run(p: PumpController, tl: list[tuple[int, Any]], checks: bool = True) -> None:
    t = 0
    for dt, ev in tl:
        t += dt
        p.advance(T0 + timedelta(seconds=t))
        if checks:
            assert conserved(p)
            if p.reservoir_estimate_nl <= p.low_threshold_nl and p.filled_nl:
                a = p.alarms.active("low_reservoir")
                assert a is not None and a.raised_at <= p.now.isoformat()
        p.handle(ev)
        if checks:
            assert conserved(p)
    p.advance(T0 + timedelta(seconds=t + 86400))


@SETTINGS
@given(st.integers(0, 2**32 - 1), prescriptions(), concs, st.floats(0, 40), timeline)
def test_volume_conserved_and_low_alarm_in_time(seed: int, rx: Prescription, conc: float,
                                                volume: float, tl: list[Any]) -> None:
    p = build(seed, rx, conc, volume)
    run(p, tl)
    assert conserved(p)
    assert p.log.verify()[0]


@SETTINGS
@given(prescriptions(), concs, st.integers(1, 40 * 86400), st.integers(0, 86399))
def test_delivered_within_one_stroke_of_programmed(rx: Prescription, conc: float, seconds: int,
                                                    clock: int) -> None:
    p = build(1, rx, conc, 40.0)
    p.handle(cmd.SetClock(T0 + timedelta(seconds=clock)))
    p.advance(T0 + timedelta(seconds=seconds))
    want = programmed_strokes(rx, conc, p.nominal_nl, clock, seconds)
    if not p.empty:
        assert want - 1 - 1e-6 <= p.strokes <= want + 1e-6
    else:
        assert p.strokes <= want + 1e-6


@SETTINGS
@given(prescriptions(), concs, st.integers(1, 30 * 86400), st.integers(1, 30 * 86400))
def test_nothing_delivered_while_stopped_or_stalled(rx: Prescription, conc: float, a: int,
                                                    b: int) -> None:
    p = build(2, rx, conc, 40.0)
    p.advance(T0 + timedelta(seconds=a))
    p.handle(cmd.Stop())
    n, d = p.strokes, p.delivered_nl
    p.advance(T0 + timedelta(seconds=a + b))
    assert p.strokes == n and p.delivered_nl == d
    p.handle(cmd.Start())
    p.handle(cmd.MriStart())
    p.advance(T0 + timedelta(seconds=a + 2 * b))
    assert p.strokes == n


@SETTINGS
@given(st.integers(0, 1000), prescriptions(), concs, st.floats(1, 40), timeline)
def test_same_seed_and_events_same_history(seed: int, rx: Prescription, conc: float,
                                           volume: float, tl: list[Any]) -> None:
    p1, p2 = build(seed, rx, conc, volume), build(seed, rx, conc, volume)
    run(p1, tl, checks=False)
    run(p2, tl, checks=False)
    assert p1.to_dict() == p2.to_dict()


@SETTINGS
@given(st.integers(0, 1000), prescriptions(), concs, st.floats(1, 40), timeline, st.data())
def test_snapshot_restore_any_point_same_future(seed: int, rx: Prescription, conc: float,
                                                volume: float, tl: list[Any], data: Any) -> None:
    cut = data.draw(st.integers(0, len(tl)))
    p = build(seed, rx, conc, volume)
    run(p, tl[:cut], checks=False)
    copy = PumpController.from_dict(json.loads(json.dumps(p.to_dict())))
    assert copy.to_dict() == p.to_dict()
    t = p.t
    rest = [(dt, ev) for dt, ev in tl[cut:]]
    for q in (p, copy):
        s = t - int((T0 - T0.replace(year=1970, month=1, day=1)).total_seconds())
        tt = s
        for dt, ev in rest:
            tt += dt
            q.advance(T0 + timedelta(seconds=tt))
            q.handle(ev)
    assert p.to_dict() == copy.to_dict()
