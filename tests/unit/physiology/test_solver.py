"""Exact solver vs solve_ivp, and invariants of the linear kinetics (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.physiology.model import N_STATES, SIGNED, build_system, readouts, steady_state
from openitb.physiology.params import patient, population
from openitb.physiology.solver import ExactSolver, solve_reference

AMOUNTS = [i for i in range(N_STATES) if i not in SIGNED]  # all but the signed deficit


def year_schedule() -> tuple[np.ndarray, np.ndarray]:
    """One year: 4-step flex (00-06 200, 06-12 600, 12-18 400, 18-24 400 mcg/day), a 100 mcg
    clinician bolus over 1 h every 30 days, a refill every 90 days (infusion paused for 30 min,
    then the new concentration arrives: +20 % dose for 5 h), a pocket fill on day 200 and a
    pump that runs dry for 3 days on day 300."""
    steps = [(0.0, 200.0), (6.0, 600.0), (12.0, 400.0), (18.0, 400.0)]
    times: list[float] = [0.0]
    rates: list[float] = []
    for day in range(365):
        for i, (start, dose) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else 24.0
            t0, t1 = day * 24 + start, day * 24 + end
            cuts = [t0, t1]
            if day % 30 == 10 and start == 6.0:
                cuts = [t0, t0 + 2, t0 + 3, t1]  # bolus 08:00-09:00
            if day % 90 == 45 and start == 12.0:
                cuts = [t0, t0 + 0.5, t0 + 5.5, t1]  # refill pause, then bridge
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                r = dose / 24
                if len(cuts) == 4 and start == 6.0 and a == t0 + 2:
                    r += 100.0
                if len(cuts) == 4 and start == 12.0:
                    r = 0.0 if a == t0 else (dose * 1.2 / 24 if a == t0 + 0.5 else r)
                times.append(b)
                rates.append(r)
    t = np.array(times)
    u = np.zeros((len(rates), 2))
    u[:, 0] = rates
    # a late refill: the pump runs dry for 3 days (days 300-303), so withdrawal states move
    u[(t[:-1] >= 300 * 24) & (t[:-1] < 303 * 24), 0] = 0.0
    # a pocket fill on day 200: 20 mg into the tissue over the 6 h segment from 00:00
    u[t[:-1] == 200 * 24, 1] = 20_000 / 6
    return t, u


def _close(exact: np.ndarray, ref: np.ndarray, rel: float) -> None:
    scale = np.max(np.abs(ref), axis=-2, keepdims=True)
    err = np.abs(exact - ref)
    bound = rel * np.abs(ref) + 1e-9 * scale + 1e-12
    worst = float(np.max(err / bound))
    assert worst <= 1.0, f"worst error {worst:.3g} x the bound"


def test_exact_agrees_with_solve_ivp_to_0p1pct_over_a_year_of_flex_boluses_and_refills() -> None:
    t, u = year_schedule()
    assert t[-1] == 365 * 24 and len(t) > 1460
    system = build_system(population(2, np.random.default_rng(1)))
    exact = ExactSolver(system).solve(t, u)
    ref = solve_reference(system, t, u)
    # every state, every output point (the signed deficit compared with the same bound)
    _close(exact, ref, 1e-3)
    ro_exact, ro_ref = readouts(system, exact), readouts(system, ref)
    for key in ("csf_lumbar_ng_per_ml", "mas", "withdrawal", "overdose", "plasma_ng_per_ml"):
        _close(ro_exact[key][..., None], ro_ref[key][..., None], 1e-3)
    # the schedule really moves every part of the model
    assert ro_ref["withdrawal"].max() > 0.5 and ro_ref["plasma_ng_per_ml"].max() > 50


def test_the_exact_solver_does_not_depend_on_the_step_size() -> None:
    system = build_system(patient())
    t = np.array([0.0, 1.0, 7.0, 30.0])
    u = np.array([[50.0, 0.0], [10.0, 5.0], [0.0, 0.0]])
    coarse = ExactSolver(system).solve(t, u)
    fine_t = np.linspace(0.0, 30.0, 301)
    fine_u = np.array([u[np.searchsorted(t, a, side="right") - 1] for a in fine_t[:-1]])
    fine = ExactSolver(system).solve(fine_t, fine_u)
    np.testing.assert_allclose(fine[:, [0, 10, 70, 300]], coarse, rtol=1e-9, atol=1e-9)


def test_long_constant_infusion_reaches_the_algebraic_steady_state() -> None:
    system = build_system(patient())
    t = np.array([0.0, 24.0 * 200])
    x = ExactSolver(system).solve(t, np.array([[400 / 24, 0.0]]))[:, -1]
    np.testing.assert_allclose(x, steady_state(system, np.array([400 / 24, 0.0])), rtol=1e-6, atol=1e-9)
    ro = readouts(system, x)
    assert abs(ro["csf_tip_ng_per_ml"][0] - 400_000 / 24 / 30) < 1e-3  # R / CL


schedules = st.integers(1, 6).flatmap(lambda m: st.tuples(
    st.lists(st.floats(0.05, 48.0), min_size=m, max_size=m),
    st.lists(st.tuples(st.floats(0.0, 500.0), st.floats(0.0, 500.0)), min_size=m, max_size=m)))


def _arrays(sched: tuple[list[float], list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    dts, us = sched
    return np.concatenate([[0.0], np.cumsum(dts)]), np.array(us, dtype=float)


@settings(max_examples=30, deadline=None)
@given(sched=schedules, seed=st.integers(0, 2**16))
def test_states_and_readouts_never_negative(sched: tuple[list[float], list[tuple[float, float]]],
                                            seed: int) -> None:
    t, u = _arrays(sched)
    system = build_system(population(3, np.random.default_rng(seed)))
    x = ExactSolver(system).solve(t, u)
    assert np.all(x[..., AMOUNTS] >= -1e-9)
    ro = readouts(system, x)
    for key in ("withdrawal", "overdose", "mas", "mas_drop"):
        assert np.all(ro[key] >= 0)
    assert np.all((ro["mas"] <= 4) & (ro["withdrawal"] <= 1) & (ro["overdose"] <= 1))


@settings(max_examples=30, deadline=None)
@given(a=schedules, k=st.floats(0.0, 10.0), seed=st.integers(0, 2**16))
def test_kinetics_are_linear_superposition_and_scaling(
        a: tuple[list[float], list[tuple[float, float]]], k: float, seed: int) -> None:
    t, u1 = _arrays(a)
    u2 = np.roll(u1, 1, axis=0)[:, ::-1].copy()
    system = build_system(population(2, np.random.default_rng(seed)))
    s = ExactSolver(system)
    x1, x2, x12 = s.solve(t, u1), s.solve(t, u2), s.solve(t, k * u1 + u2)
    np.testing.assert_allclose(x12, k * x1 + x2, rtol=1e-9, atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(sched=schedules, seed=st.integers(0, 2**16))
def test_exact_matches_solve_ivp_on_random_schedules(
        sched: tuple[list[float], list[tuple[float, float]]], seed: int) -> None:
    t, u = _arrays(sched)
    system = build_system(population(1, np.random.default_rng(seed)))
    _close(ExactSolver(system).solve(t, u), solve_reference(system, t, u), 1e-6)


@settings(max_examples=25, deadline=None)
@given(d1=st.floats(1.0, 2000.0), factor=st.floats(1.01, 5.0), seed=st.integers(0, 2**16))
def test_response_is_monotonic_in_dose(d1: float, factor: float, seed: int) -> None:
    system = build_system(population(4, np.random.default_rng(seed)))
    lo = readouts(system, steady_state(system, np.array([d1 / 24, 0.0])))
    hi = readouts(system, steady_state(system, np.array([d1 * factor / 24, 0.0])))
    assert np.all(hi["csf_lumbar_ng_per_ml"] > lo["csf_lumbar_ng_per_ml"])
    assert np.all(hi["mas_drop"] > lo["mas_drop"])
    assert np.all(hi["mas"] <= lo["mas"])
    assert np.all(hi["overdose"] >= lo["overdose"])
    assert np.all(hi["mas_drop"] < system.patients.p("emax_mas"))


def test_bad_schedules_are_refused_naming_the_field() -> None:
    import pytest

    from openitb.errors import InvalidInput

    system = build_system(patient())
    with pytest.raises(InvalidInput, match="times"):
        ExactSolver(system).solve(np.array([0.0, 1.0, 1.0]), np.zeros((2, 2)))
    with pytest.raises(InvalidInput, match="rates"):
        ExactSolver(system).solve(np.array([0.0, 1.0]), np.array([[-1.0, 0.0]]))
    with pytest.raises(InvalidInput, match="rates"):
        ExactSolver(system).solve(np.array([0.0, 1.0]), np.zeros((3, 2)))
