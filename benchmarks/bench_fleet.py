"""Fleet engine: patient-days per second per core, against the controller and patient model run
one patient at a time in the same run, and the speed-up from one to two local Dask workers.

Workload: 10,000 patients over 5 years, 4-step flex dosing, refills on the policy's schedule with
missed visits, catheter faults and pocket fills at the study defaults (one policy).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from openitb.devices import get_pump
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.sim.fleet import Draws, draw, simulate, study_days
from openitb.sim.fleet_patients import FleetPatients
from openitb.sim.fleet_runner import run_study
from openitb.sim.study import parse_study
from openitb.therapy.prescription import Flex, FlexStep
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PATIENTS = int(os.environ.get("OPENITB_BENCH_FLEET_PATIENTS", "10000"))
YEARS = 5.0
REFERENCE_PATIENTS = 20
REFERENCE_DAYS = 90


def study(patients: int, years: float):  # type: ignore[no-untyped-def]
    return parse_study({"name": "bench", "patients": patients, "years": years, "seed": 1,
                        "policies": [{"name": "2 mL, 7 days", "low_alarm_ml": 2,
                                      "lead_days": 7}]})


def one_by_one(d: Draws, starts_h: tuple[int, ...], days: int) -> float:
    """Seconds for the controller + the patient model, one patient at a time, over ``days``."""
    t = time.perf_counter()
    ends = [*starts_h[1:], 24]
    for i in range(len(d)):
        profile = get_pump("itb-20" if d.capacity_nl[i] == 20_000_000 else "itb-40")
        p = PumpController(profile, T0, true_stroke_nl=int(d.true_stroke_nl[i]))
        conc = McgPerMl(float(d.conc[i]))
        p.handle(cmd.Refill(Milliliters(profile.capacity.value), conc))
        rx = Flex(tuple(FlexStep(h * 3600, McgPerDay(float(x))) for h, x in zip(starts_h, d.dose[i], strict=True)))
        p.handle(cmd.Program(rx, conc))
        p.handle(cmd.Start())
        person = FleetPatients(d.patients.take([i]), np.array([float(d.dose[i].mean())]))
        for day in range(days):
            for s0, s1 in zip(starts_h, ends, strict=True):
                before = p.delivered_mcg, p.tissue_mcg
                p.advance(T0 + timedelta(days=day, hours=s1))
                if p.reservoir_estimate_nl < 4_000_000:
                    p.handle(cmd.Refill(Milliliters(profile.capacity.value), conc))
                person.step(float(s1 - s0), np.array([p.delivered_mcg - before[0]]),
                            np.array([p.tissue_mcg - before[1]]))
                person.observe(day * 24.0 + s1)
    return time.perf_counter() - t


def main() -> None:
    s = study(PATIENTS, YEARS)
    d = draw(s)
    t = time.perf_counter()
    counts = simulate(d, s, s.policies[0])
    fleet_s = time.perf_counter() - t
    days = PATIENTS * study_days(s)
    fleet_rate = days / fleet_s
    print(f"fleet engine: {PATIENTS:,} patients × {YEARS:g} years = {days:,} patient-days "
          f"in {fleet_s:.1f} s on one core: {fleet_rate:,.0f} patient-days/s per core "
          f"(target 1,000,000; {counts['refill']:,} refills, {counts['catheter_fault']:,} "
          f"catheter faults, {counts['withdrawal_severe']:,} severe withdrawals)")
    ref_s = one_by_one(d.take(0, REFERENCE_PATIENTS), s.population.flex_starts_h, REFERENCE_DAYS)
    ref_rate = REFERENCE_PATIENTS * REFERENCE_DAYS / ref_s
    print(f"reference, controller + patient model one patient at a time: "
          f"{ref_rate:,.0f} patient-days/s ({REFERENCE_PATIENTS} patients × {REFERENCE_DAYS} days "
          f"in {ref_s:.1f} s); fleet/reference ratio {fleet_rate / ref_rate:,.0f}x")
    small = study(4000, 1.0)
    times = {}
    for workers in (1, 2):
        t = time.perf_counter()
        run_study(small, workers=workers, partition_size=500)
        times[workers] = time.perf_counter() - t
    print(f"local Dask, 4,000 patients × 1 year (cluster start included): 1 worker "
          f"{times[1]:.1f} s, 2 workers {times[2]:.1f} s; speed-up {times[1] / times[2]:.2f}x "
          f"on {os.cpu_count()} cores")
