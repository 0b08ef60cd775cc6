"""Fleet pumps + fleet patients against the controller + the patient model, one patient at a time."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from openitb.physiology.model import INTRATHECAL, SUBCUTANEOUS, build_system, readouts
from openitb.physiology.params import population
from openitb.physiology.solver import ExactSolver
from openitb.pump import commands as cmd
from openitb.sim.fleet_patients import Episodes, FleetPatients, coupled_blocks
from openitb.sim.fleet_pumps import FleetPumps

from .test_fleet_pumps import T0, grid, random_fleet, run_controller_pump


@pytest.mark.slow
def test_fleet_patients_agree_with_one_by_one_to_a_tenth_of_a_percent() -> None:
    n, days = 200, 90
    f = random_fleet(n, days, seed=7)
    patients = population(n, np.random.default_rng(7))
    daily = f["doses"].mean(axis=1).astype(float)
    fleet = FleetPumps(np.full(n, 1000), f["true_nl"], f["conc"], f["low_ml"] * 1_000_000)
    fleet.refill(np.ones(n, bool), f["capacity_ml"] * 1_000_000)
    people = FleetPatients(patients, daily)
    steps = grid(days)
    csf = np.zeros((len(steps), n))
    for j, (t0, t1, k) in enumerate(steps):
        ev = f["events"][:, j]
        fleet.refill(ev == 1, np.minimum(f["refill_ml"][:, j], f["capacity_ml"]) * 1_000_000)
        fleet.set_fault(ev == 2, "occlusion")
        fleet.set_fault(ev == 3, "disconnection")
        fleet.set_fault(ev == 4, "none")
        pocket = f["pocket_ml"][:, j] * 1_000_000
        pocket_mcg = fleet.pocket_fill((ev == 5) & (fleet.res_nl >= pocket), pocket)
        r = fleet.deliver(t0, t1, f["doses"][:, k])
        people.step((t1 - t0) / 3600, r.to_csf_mcg, r.to_tissue_mcg + pocket_mcg)
        csf[j] = people.readouts()["csf_lumbar_ng_per_ml"]
    assert np.mean(csf > 50) > 0.25  # much of the time the patients did get drug
    for i in range(n):
        # The same patient alone: the controller's deliveries drive a one-patient exact solver.
        pump, deliveries = run_controller_pump(f, i, days)
        one = patients.take([i])
        system = build_system(one)
        times = np.array([0.0] + [t1 / 3600 for _, t1, _ in steps])
        rates = np.zeros((len(steps), 2))
        for j, (t0, t1, _k) in enumerate(steps):
            rates[j, INTRATHECAL] = deliveries[j][0] / ((t1 - t0) / 3600)
            rates[j, SUBCUTANEOUS] = deliveries[j][1] / ((t1 - t0) / 3600)
        x0 = FleetPatients(one, daily[[i]]).x
        xs = ExactSolver(system).solve(times, rates, x0)
        ref = readouts(system, xs)["csf_lumbar_ng_per_ml"][0, 1:]
        np.testing.assert_allclose(csf[:, i], ref, rtol=1e-3, atol=1e-6, err_msg=f"patient {i}")


def test_blocks_split_only_independent_states() -> None:
    system = build_system(population(50, np.random.default_rng(1)))
    blocks = coupled_blocks(system.a)
    assert sorted(int(i) for b in blocks for i in b) == list(range(system.a.shape[1]))
    for b in blocks:
        rest = np.setdiff1d(np.arange(system.a.shape[1]), b)
        assert not np.any(system.a[:, b[:, None], rest])  # nothing outside feeds the block


def test_blocked_stepping_equals_the_full_exact_step() -> None:
    pts = population(300, np.random.default_rng(3))
    fp = FleetPatients(pts, np.full(300, 400.0))
    x0 = fp.x.copy()
    it, sc = np.full(300, 120.0), np.linspace(0, 500, 300)
    fp.step(7.0, it, sc)
    phi, gamma = ExactSolver(fp.system).step_matrices(7.0)
    u = np.stack([it / 7.0, sc / 7.0], axis=1)
    expected = np.einsum("nij,nj->ni", phi, x0) + np.einsum("nij,nj->ni", gamma, u)
    np.testing.assert_allclose(fp.x, expected, rtol=1e-12, atol=1e-12)


def test_episodes_count_once_by_peak() -> None:
    e = Episodes.empty(3, (0.1, 0.5))
    for t, sev in enumerate([[0, 0.2, 0.6], [0, 0.3, 0.2], [0, 0.01, 0.04], [0.2, 0.01, 0.7]]):
        e.update(float(t), np.array(sev))
    e.close()
    # patient 1: one episode peaking at 0.3 (early); patient 2: 0.6 then ended, then 0.7 open;
    # patient 0: one open episode at 0.2.
    assert e.counts.tolist() == [2, 2]


def test_controller_disconnection_reference_is_what_the_fleet_sees() -> None:
    # A guard on the reference itself: a disconnected catheter sends the dose to tissue.
    f = random_fleet(1, 3, seed=1)
    f["events"][:] = 0
    f["events"][0, 0] = 3
    pump, deliveries = run_controller_pump(f, 0, 3)
    assert sum(d[0] for d in deliveries) == 0 and sum(d[1] for d in deliveries) > 0
    assert pump.now == T0 + timedelta(days=3)
    assert isinstance(cmd.Stop(), cmd.Stop)


def test_severities_are_the_readouts_severities() -> None:
    from openitb.physiology.model import severities

    fp = FleetPatients(population(200, np.random.default_rng(9)), np.full(200, 300.0))
    fp.step(24.0, np.zeros(200), np.linspace(0, 2000, 200))  # a dry day, some pocket fills
    w, o = severities(fp.system, fp.x)
    r = fp.readouts()
    np.testing.assert_array_equal(w, r["withdrawal"])
    np.testing.assert_array_equal(o, r["overdose"])
    assert w.max() > 0.01 and o.max() > 0.01
