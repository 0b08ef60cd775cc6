"""Patient model: the exact solver on 10,000 virtual patients for one year of 4-step flex dosing,
against SciPy solve_ivp (DOP853, rtol 1e-10) on a sample of the same patients.

Both produce the states at every input change (4 a day, 1,460 output points a year). The exact
solver keeps a running maximum and minimum of every state rather than storing 10,000 x 1,461 x 8
numbers; the sample's exact and reference trajectories are compared point by point.
"""

from __future__ import annotations

import time

import numpy as np

from openitb.physiology.model import N_STATES, build_system
from openitb.physiology.params import population
from openitb.physiology.solver import ExactSolver, solve_reference

PATIENTS = 10_000
SAMPLE = 3
FLEX = (200.0, 600.0, 400.0, 400.0)  # mcg/day over 00-06, 06-12, 12-18, 18-24


def schedule(days: int) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(0.0, days * 24.0 + 1e-9, 6.0)
    rates = np.zeros((times.size - 1, 2))
    rates[:, 0] = np.tile(np.array(FLEX) / 24.0, days)
    return times, rates


def main() -> int:
    rng = np.random.default_rng(2026)
    patients = population(PATIENTS, rng)
    times, rates = schedule(365)
    t0 = time.perf_counter()
    system = build_system(patients)
    solver = ExactSolver(system)
    hi = np.full((PATIENTS, N_STATES), -np.inf)
    lo = np.full((PATIENTS, N_STATES), np.inf)
    for x in solver.iterate(times, rates):
        np.maximum(hi, x, out=hi)
        np.minimum(lo, x, out=lo)
    exact_s = time.perf_counter() - t0
    exact_rate = PATIENTS / exact_s

    sample = list(range(SAMPLE))
    t0 = time.perf_counter()
    ref = solve_reference(system, times, rates, patients=sample)
    ref_s = time.perf_counter() - t0
    ref_rate = SAMPLE / ref_s

    sub = ExactSolver(build_system(patients.take(slice(0, SAMPLE)))).solve(times, rates)
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    rel = np.max(np.abs(sub - ref) / (np.abs(ref) + 1e-9 * scale + 1e-12))
    ratio = exact_rate / ref_rate
    print(f"exact solver: {PATIENTS} patients x 1 year (4-step flex, {times.size - 1} segments) "
          f"in {exact_s:.2f} s -> {exact_rate:,.0f} patient-years/s")
    print(f"solve_ivp (DOP853, rtol 1e-10): {SAMPLE} patients x 1 year in {ref_s:.2f} s -> "
          f"{ref_rate:.3f} patient-years/s")
    print(f"ratio: {ratio:,.0f}x per patient-year (target >= 1000x); largest relative "
          f"difference on the sample: {rel:.2e} (target < 1e-3)")
    return 0 if ratio >= 1000 and rel < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
