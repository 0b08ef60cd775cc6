"""The vectorised fleet pumps against the single-pump controller, pump by pump, to the stroke."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from openitb.devices import get_pump
from openitb.errors import InvalidInput
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, to_seconds
from openitb.sim.fleet_pumps import FleetPumps
from openitb.therapy.prescription import Flex, FlexStep
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS_S = (0, 7 * 3600, 12 * 3600, 19 * 3600)  # a 4-step flex day
CONCS = (500, 1000, 2000)


def grid(days: int) -> list[tuple[int, int, int]]:
    """(t0, t1, step index) over ``days`` days of the 4-step day."""
    out = []
    for d in range(days):
        for k, s in enumerate(STEPS_S):
            end = STEPS_S[k + 1] if k + 1 < len(STEPS_S) else 86_400
            out.append((d * 86_400 + s, d * 86_400 + end, k))
    return out


def random_fleet(n: int, days: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = len(grid(days))
    return {
        "capacity_ml": rng.choice([20, 40], n),
        "true_nl": rng.integers(855, 1146, n),
        "conc": rng.choice(CONCS, n),
        "low_ml": rng.choice([2, 3, 4], n),
        "doses": rng.integers(100, 1500, (n, 4)),  # >= 0.048 mL/day at 2000 mcg/mL
        # events per grid boundary: 0 nothing, 1 refill, 2 occlusion, 3 disconnection, 4 repair,
        # 5 pocket fill
        "events": np.where(rng.random((n, steps)) < 0.02, rng.integers(1, 6, (n, steps)), 0),
        "refill_ml": rng.integers(5, 21, (n, steps)),
        "pocket_ml": rng.integers(1, 6, (n, steps)),
    }


def run_controller_pump(f: dict[str, np.ndarray], i: int,
                        days: int) -> tuple[PumpController, list[tuple[float, float]]]:
    """Pump ``i`` through the controller: the pump, and the mcg it sent to the intrathecal space
    and to tissue (pocket fills included) in each grid step."""
    deliveries: list[tuple[float, float]] = []
    p = _drive(f, i, days, lambda p, before: deliveries.append(
        (p.delivered_mcg - before[0], p.tissue_mcg - before[1])))
    return p, deliveries


def run_controller(f: dict[str, np.ndarray], i: int,
                   days: int) -> tuple[list[tuple[int, ...]], list[float]]:
    """Pump ``i`` through the controller: its state at each grid point, its low-alarm times."""
    history: list[tuple[int, ...]] = []
    p = _drive(f, i, days, lambda p, _b: history.append(
        (p.strokes, p.reservoir_estimate_nl, p.reservoir_true_nl, p.delivered_nl, p.tissue_nl)))
    lows = [a.raised_at for a in p.alarms.history if a.kind == "low_reservoir"]
    return history, low_alarm_times(lows)


def _drive(f: dict[str, np.ndarray], i: int, days: int,
           record: Callable[[PumpController, tuple[float, float]], None]) -> PumpController:
    profile = get_pump(f"itb-{int(f['capacity_ml'][i])}")
    p = PumpController(profile, T0, true_stroke_nl=int(f["true_nl"][i]))
    conc = McgPerMl(float(f["conc"][i]))
    assert p.handle(cmd.Refill(Milliliters(float(f["capacity_ml"][i])), conc)).ok
    assert p.handle(cmd.SetLowAlarm(Milliliters(float(f["low_ml"][i])))).ok
    rx = Flex(tuple(FlexStep(s, McgPerDay(float(d))) for s, d in zip(STEPS_S, f["doses"][i], strict=True)))
    assert p.handle(cmd.Program(rx, conc)).ok and p.handle(cmd.Start()).ok
    for j, (_t0, t1, _k) in enumerate(grid(days)):
        before = (p.delivered_mcg, p.tissue_mcg)
        ev = int(f["events"][i, j])
        if ev == 1:
            vol = min(int(f["refill_ml"][i, j]), int(f["capacity_ml"][i]))
            assert p.handle(cmd.Refill(Milliliters(float(vol)), conc)).ok
        elif ev in (2, 3, 4):
            assert p.handle(cmd.CatheterFault({2: "occlusion", 3: "disconnection", 4: "none"}[ev])).ok
        elif ev == 5 and p.reservoir_true_nl >= int(f["pocket_ml"][i, j]) * 1_000_000:
            assert p.handle(cmd.PocketFill(Milliliters(float(f["pocket_ml"][i, j])))).ok
        p.advance(T0 + timedelta(seconds=t1))
        record(p, before)
    return p


def low_alarm_times(p_alarms: list[str]) -> list[float]:
    return [to_seconds(datetime.fromisoformat(a)) - to_seconds(T0) for a in p_alarms]


@pytest.mark.slow
def test_fleet_agrees_with_the_controller_to_the_stroke_on_200_random_pumps() -> None:
    n, days = 200, 120
    f = random_fleet(n, days, seed=20261128)
    fleet = FleetPumps(np.full(n, 1000), f["true_nl"], f["conc"], f["low_ml"] * 1_000_000)
    fleet.refill(np.ones(n, bool), f["capacity_ml"] * 1_000_000)
    history = np.zeros((len(grid(days)), 5, n), dtype=np.int64)
    low_times: list[list[float]] = [[] for _ in range(n)]
    for j, (t0, t1, k) in enumerate(grid(days)):
        ev = f["events"][:, j]
        vol = np.minimum(f["refill_ml"][:, j], f["capacity_ml"]) * 1_000_000
        fleet.refill(ev == 1, vol)
        fleet.set_fault(ev == 2, "occlusion")
        fleet.set_fault(ev == 3, "disconnection")
        fleet.set_fault(ev == 4, "none")
        pocket = f["pocket_ml"][:, j] * 1_000_000
        fleet.pocket_fill((ev == 5) & (fleet.res_nl >= pocket), pocket)
        r = fleet.deliver(t0, t1, f["doses"][:, k])
        for i in np.flatnonzero(~np.isnan(r.low_alarm_at)):
            low_times[i].append(float(r.low_alarm_at[i]))
        history[j] = (fleet.strokes, fleet.est_nl, fleet.res_nl, fleet.delivered_nl,
                      fleet.tissue_nl)
        assert fleet.conserved()
    total_strokes = 0
    for i in range(n):
        ref, p_times = run_controller(f, i, days)
        np.testing.assert_array_equal(history[:, :, i], np.array(ref), err_msg=f"pump {i}")
        total_strokes += int(ref[-1][0])
        # Low-reservoir alarm times agree to the second (the controller keeps exact fractions).
        assert len(p_times) == len(low_times[i]), f"pump {i}"
        assert all(math.isclose(a, b, abs_tol=1.0) for a, b in zip(p_times, low_times[i], strict=True))
    assert total_strokes > 5_000_000  # the comparison covered real delivery
    assert sum(len(t) for t in low_times) > 100 and int(fleet.empty.sum()) > 10


def test_bad_fleet_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput, match="concentration"):
        FleetPumps([1000], [1000], [0], [2_000_000])
    with pytest.raises(InvalidInput, match="true_stroke_nl"):
        FleetPumps([1000, 1000], [1000], [500, 500], [1, 1])
    with pytest.raises(InvalidInput, match="whole"):
        FleetPumps([1000], [1000.5], [500], [1])
    fleet = FleetPumps([1000], [1000], [500], [1])
    with pytest.raises(InvalidInput, match="fault"):
        fleet.set_fault(np.ones(1, bool), "crack")
    with pytest.raises(InvalidInput, match="span"):
        fleet.deliver(10, 10, [100])
