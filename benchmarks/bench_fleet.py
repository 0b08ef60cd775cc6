"""Fleet engine: patient-days per second per core, against the controller and patient model run
one patient at a time in the same run, and the speed-up from one to two local Dask workers.

Workload: 10,000 patients over 5 years, 4-step flex dosing, refills on the policy's schedule with
missed visits, catheter faults and pocket fills at the study defaults (one policy). Scaling: the
shipped study on one and two local workers, the cluster start timed apart from the run.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from openitb.devices import get_pump
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.sim.fleet import Draws, draw, simulate, study_days
from openitb.sim.fleet_patients import FleetPatients
from openitb.sim.fleet_runner import run_study
from openitb.sim.study import load_study, parse_study
from openitb.therapy.prescription import Flex, FlexStep
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PATIENTS = int(os.environ.get("OPENITB_BENCH_FLEET_PATIENTS", "10000"))
YEARS = 5.0
REFERENCE_PATIENTS = 20
REFERENCE_DAYS = 90
SHIPPED = Path(__file__).resolve().parents[1] / "studies" / "thresholds_and_lead_times.toml"
# The shipped study runs 2,000 patients × 5 years × 9 policies; set fewer years to shorten a run.
SHIPPED_YEARS = float(os.environ.get("OPENITB_BENCH_FLEET_YEARS", "5"))


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


def main() -> int:
    print(f"load average: {_load()} at the start, on {os.cpu_count()} cores")
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
    shipped = load_study(SHIPPED).with_overrides(years=SHIPPED_YEARS)
    label = (f"{shipped.patients:,} patients × {shipped.years:g} years × "
             f"{len(shipped.policies)} policies")
    times: dict[int, dict[str, float]] = {}
    results = {}
    for workers in (1, 2):
        times[workers] = {}
        results[workers] = run_study(shipped, workers=workers, timings=times[workers])
    same = results[1] == results[2]
    speedup = times[1]["run_s"] / times[2]["run_s"]
    print(f"local Dask, the shipped study ({SHIPPED.name}: {label}): "
          f"cluster start (processes, imports, population) 1 worker {times[1]['start_s']:.1f} s, "
          f"2 workers {times[2]['start_s']:.1f} s; run 1 worker {times[1]['run_s']:.1f} s, "
          f"2 workers {times[2]['run_s']:.1f} s; speed-up {speedup:.2f}x start-up excluded "
          f"(target >= 1.8x), {(sum(times[1].values())) / sum(times[2].values()):.2f}x included; "
          f"identical results: {same}; on {os.cpu_count()} cores")
    print(f"target {'met' if speedup >= 1.8 else 'MISSED':6s} fleet: 2 workers >= 1.8x one worker "
          f"on the shipped study, start-up excluded ({speedup:.2f}x; start-up reported apart: "
          f"{times[1]['start_s']:.1f} s / {times[2]['start_s']:.1f} s)")
    print(f"target {'met' if same else 'MISSED':6s} fleet: identical results with 1 and 2 workers")
    print(f"load average: {_load()} at the end")
    return 0 if same and speedup >= 1.8 else 1


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
