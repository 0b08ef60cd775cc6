"""Fleet simulation: a refill policy's risk over many virtual patient-years.

Pumps (``fleet_pumps``) and patients (``fleet_patients``) are advanced together, flex step to
flex step, with NumPy arrays; the clinic around them (refill appointments, missed visits, alarm
calls, presentations in withdrawal, catheter revisions) is vectorised the same way.

Everything random is drawn up front for the whole population from the study's seed, patient by
patient, so any slice of patients simulates identically whichever partition or worker runs it:
results are the same for a given seed whatever the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openitb.devices import get_pump
from openitb.physiology.model import INTRATHECAL, N_INPUTS, build_system, readouts, steady_state
from openitb.physiology.params import Patients, population
from openitb.pump.controller import draw_true_stroke_nl
from openitb.sim.fleet_patients import FleetPatients, concat
from openitb.sim.fleet_pumps import DAY_S, FleetPumps
from openitb.sim.study import Policy, Study

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

OUTCOMES = (
    "low_alarm", "empty_reservoir", "reservoir_dry", "withdrawal_early", "withdrawal_severe",
    "overdose_drowsiness", "overdose_respiratory", "overdose_coma", "unplanned_visit",
    "catheter_fault", "refill",
)
MAX_FAULTS = 8  # catheter faults drawn per patient (far beyond the rates studied)


@dataclass(frozen=True)
class Draws:
    """Everything random about the population, one row per patient."""

    patients: Patients
    base: tuple[str, ...]
    dose: IntArray  # (n, steps) mcg/day per flex step, whole numbers
    conc: IntArray  # mcg/mL
    capacity_nl: IntArray
    nominal_nl: IntArray
    true_stroke_nl: IntArray
    fault_gap_s: FloatArray  # (n, MAX_FAULTS) time to each fault from the last repair
    fault_kind: npt.NDArray[np.int8]  # (n, MAX_FAULTS) 1 occlusion, 2 disconnection
    missed: npt.NDArray[np.bool_]  # (n, refills)
    delay_s: FloatArray  # (n, refills)
    pocket: npt.NDArray[np.bool_]  # (n, refills)

    def __len__(self) -> int:
        return int(self.conc.size)

    def take(self, start: int, stop: int) -> Draws:
        sl = slice(start, stop)
        return Draws(self.patients.take(sl), self.base[sl], self.dose[sl], self.conc[sl],
                     self.capacity_nl[sl], self.nominal_nl[sl], self.true_stroke_nl[sl],
                     self.fault_gap_s[sl], self.fault_kind[sl], self.missed[sl],
                     self.delay_s[sl], self.pocket[sl])


def study_days(study: Study) -> int:
    return max(1, round(study.years * 365.25))


def _weights(mix: dict[str, float], n: int) -> list[tuple[str, int]]:
    """Whole counts per entry of a weighted mix, in the file's order, summing to ``n``."""
    total = sum(mix.values())
    counts = [(k, math.floor(n * w / total)) for k, w in mix.items()]
    short = n - sum(c for _, c in counts)
    return [(k, c + (1 if i < short else 0)) for i, (k, c) in enumerate(counts)]


def titrated_dose(patients: Patients, target_mas_drop: float) -> FloatArray:
    """The daily dose that gives each patient ``target_mas_drop`` at steady state: what a clinic
    reaches by titration. The model is linear up to the effect, so one steady state per patient
    at 1 mcg/day gives the effect-site concentration per mcg/day; the Emax relation is inverted
    for the concentration needed (aiming at 90 % of the patient's maximum where the target is
    beyond it)."""
    system = build_system(patients)
    rates = np.zeros((len(patients), N_INPUTS))
    rates[:, INTRATHECAL] = 1.0 / 24.0
    per_unit = readouts(system, steady_state(system, rates))["ce_target_ng_per_ml"]
    emax, ec50, hill = (patients.p(k) for k in ("emax_mas", "ec50_ng_per_ml", "hill"))
    drop = np.minimum(target_mas_drop, 0.9 * emax)
    needed = ec50 * (drop / (emax - drop)) ** (1.0 / hill)
    return np.asarray(needed / per_unit, dtype=np.float64)


def draw(study: Study) -> Draws:
    """The study's population and its random events, from the study seed alone."""
    n = study.patients
    pop = study.population
    parts, base = [], []
    for j, (name, count) in enumerate(_weights(pop.mix, n)):
        if count:
            parts.append(population(count, np.random.default_rng([study.seed, 1, j]), name))
            base += [name] * count
    patients = concat(parts)
    rng = np.random.default_rng([study.seed, 2])
    daily = titrated_dose(patients, pop.target_mas_drop)
    sigma = math.sqrt(math.log1p(pop.titration_cv**2))
    daily = np.clip(daily * np.exp(sigma * rng.standard_normal(n)),
                    pop.dose_min_mcg_per_day, pop.dose_max_mcg_per_day)
    factors = np.array(pop.flex_factors)
    hours = np.diff([*pop.flex_starts_h, 24])
    factors = factors / (factors @ hours / 24.0)  # the steps average to the daily dose
    dose_f = daily[:, None] * factors[None, :]
    profiles = list(study.pumps.mix)
    which = np.concatenate([np.full(c, i) for i, (_, c) in enumerate(_weights(study.pumps.mix, n))])
    which = rng.permutation(which)
    capacity = np.array([get_pump(profiles[i]).capacity_nl for i in which], dtype=np.int64)
    nominal = np.array([get_pump(profiles[i]).stroke_volume_nl for i in which], dtype=np.int64)
    stroke_rng = np.random.default_rng([study.seed, 3])
    spread = study.pumps.flow_spread_pct
    if spread is None:
        true = np.array([draw_true_stroke_nl(get_pump(profiles[i]), stroke_rng) for i in which],
                        dtype=np.int64)
    else:
        lo, hi = np.ceil(nominal * (1 - spread / 100)), np.floor(nominal * (1 + spread / 100))
        true = (lo + np.floor(stroke_rng.random(n) * (hi - lo + 1))).astype(np.int64)
    # Concentration: the lowest strength whose fill lasts the minimum interval, else the highest.
    choices = np.array(sorted(study.concentration.choices_mcg_per_ml), dtype=np.int64)
    usable_ml = capacity / 1e6 - np.array([get_pump(profiles[i]).low_alarm_default.value
                                           for i in which])
    days_at = usable_ml[:, None] * choices[None, :] / daily[:, None]
    ok = days_at >= study.concentration.min_interval_days
    conc = np.where(ok.any(axis=1), choices[np.argmax(ok, axis=1)], choices[-1])
    # Whole mcg/day per step, never below the pump's slowest flow at that strength.
    min_flow = np.array([get_pump(profiles[i]).min_flow.value for i in which])
    floor = np.ceil(min_flow * conc)[:, None]
    dose = np.maximum(np.round(dose_f), floor).astype(np.int64)
    c = study.catheter
    rate = c.occlusion_per_patient_year + c.disconnection_per_patient_year
    fault_rng = np.random.default_rng([study.seed, 4])
    year_s = 365.25 * DAY_S
    gaps = (fault_rng.exponential(year_s / rate, (n, MAX_FAULTS)) if rate > 0
            else np.full((n, MAX_FAULTS), np.inf))
    p_occ = c.occlusion_per_patient_year / rate if rate > 0 else 0.0
    kinds = np.where(fault_rng.random((n, MAX_FAULTS)) < p_occ, 1, 2).astype(np.int8)
    refills = int(study.years * 365.25 / 20) + 8  # more appointments than anyone will have
    r = study.refills
    visit_rng = np.random.default_rng([study.seed, 5])
    missed = visit_rng.random((n, refills)) < r.miss_probability
    delay = visit_rng.exponential(max(r.delay_mean_days, 1e-9) * DAY_S, (n, refills))
    pocket = visit_rng.random((n, refills)) < r.pocket_fill_probability
    return Draws(patients, tuple(base), dose, conc.astype(np.int64), capacity, nominal, true,
                 gaps, kinds, missed, delay, pocket)


def simulate(d: Draws, study: Study, policy: Policy) -> dict[str, int]:
    """Run the patients in ``d`` under ``policy`` for the study's length: outcome counts."""
    n = len(d)
    starts_s = [h * 3600 for h in study.population.flex_starts_h]
    ends_s = [*starts_s[1:], DAY_S]
    low_nl = round(policy.low_alarm_ml * 1e6)
    pumps = FleetPumps(d.nominal_nl, d.true_stroke_nl, d.conc, np.full(n, low_nl))
    daily_dose = (d.dose * np.diff([*starts_s, DAY_S])).sum(axis=1) / DAY_S
    patients = FleetPatients(d.patients, daily_dose)
    flow_nl_per_day = daily_dose / d.conc * 1e6  # nominal, as the clinic's programmer computes
    r, cath = study.refills, study.catheter
    inf = np.full(n, np.inf)
    counts = dict.fromkeys(OUTCOMES, 0)
    everyone = np.ones(n, dtype=bool)
    refill_no = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)

    # The projected low-alarm date less the lead time, as a wait after each refill (fixed per
    # patient: the program and the concentration do not change in a fleet study).
    days_to_low = (d.capacity_nl - low_nl) / flow_nl_per_day
    wait_s = np.clip(days_to_low - policy.lead_days, 1.0, r.max_interval_days) * DAY_S

    def schedule(mask: npt.NDArray[np.bool_], t: float) -> FloatArray:
        """Book the next refill for ``mask`` (late where that appointment will be missed)."""
        idx = np.flatnonzero(mask)
        k = np.minimum(refill_no[idx], d.missed.shape[1] - 1)
        late = np.where(d.missed[idx, k], d.delay_s[idx, k], 0.0)
        out = appt.copy()
        out[idx] = t + wait_s[idx] + late
        return out

    appt = inf.copy()
    unplanned = np.zeros(n, dtype=bool)
    pumps.refill(everyone, d.capacity_nl)
    appt = schedule(everyone, 0.0)
    fault_no = np.zeros(n, dtype=np.int64)
    next_fault = d.fault_gap_s[:, 0].copy()
    repair_at = inf.copy()
    present_at = inf.copy()
    days = study_days(study)
    for day in range(days):
        for k, (s0, s1) in enumerate(zip(starts_s, ends_s, strict=True)):
            t0, t1 = day * DAY_S + s0, day * DAY_S + s1
            # Catheter revisions, then new faults.
            fixed = repair_at <= t0
            if fixed.any():
                pumps.set_fault(fixed, "none")
                fault_no = np.where(fixed, np.minimum(fault_no + 1, MAX_FAULTS - 1), fault_no)
                next_fault = np.where(fixed, t0 + d.fault_gap_s[rows, fault_no], next_fault)
                repair_at = np.where(fixed, np.inf, repair_at)
            new_fault = next_fault <= t0
            if new_fault.any():
                kind = d.fault_kind[rows, fault_no]
                pumps.set_fault(new_fault & (kind == 1), "occlusion")
                pumps.set_fault(new_fault & (kind == 2), "disconnection")
                counts["catheter_fault"] += int(new_fault.sum())
                next_fault = np.where(new_fault, np.inf, next_fault)
            # A patient in withdrawal reaches the clinic: refill if the pump ran low or dry,
            # and a catheter revision if the catheter has failed.
            presents = present_at <= t0
            if presents.any():
                counts["unplanned_visit"] += int(presents.sum())
                present_at = np.where(presents, np.inf, present_at)
                # The reservoir is aspirated: a pump that ran dry (even unknown to its own
                # estimate, as an over-infusing pump does) is refilled at this visit.
                dry = presents & (pumps.empty | pumps.low_on | (pumps.res_nl < pumps.low_nl))
                appt = np.where(dry, t0, appt)
                unplanned &= ~dry  # this visit is the unplanned one: don't count it twice
                faulty = presents & (pumps.fault != 0) & np.isinf(repair_at)
                repair_at = np.where(faulty, t0 + cath.revision_delay_days * DAY_S, repair_at)
            due = appt <= t0
            pocket_mcg = np.zeros(n)
            if due.any():
                counts["refill"] += int(due.sum())
                counts["unplanned_visit"] += int((due & unplanned).sum())
                pumps.refill(due, d.capacity_nl)
                k_no = np.minimum(refill_no, d.pocket.shape[1] - 1)
                pocketed = due & d.pocket[rows, k_no]
                if pocketed.any():
                    vol = np.round(d.capacity_nl * r.pocket_fill_fraction).astype(np.int64)
                    pocket_mcg = pumps.pocket_fill(pocketed, vol)
                refill_no = np.where(due, refill_no + 1, refill_no)
                unplanned &= ~due
                appt = schedule(due, float(t0))
            step = pumps.deliver(t0, t1, d.dose[:, k])
            raised = ~np.isnan(step.low_alarm_at)
            if raised.any():
                counts["low_alarm"] += int(raised.sum())
                # The alarm sounds; the patient calls; the clinic refills within the response time.
                call = np.where(raised, step.low_alarm_at + r.alarm_response_days * DAY_S, np.inf)
                earlier = call < appt
                unplanned |= earlier
                appt = np.where(earlier, call, appt)
            counts["empty_reservoir"] += int((~np.isnan(step.empty_at)).sum())
            counts["reservoir_dry"] += int(step.ran_dry.sum())
            patients.step((s1 - s0) / 3600.0, step.to_csf_mcg, step.to_tissue_mcg + pocket_mcg)
            began, _ = patients.observe(t1 / 3600.0)
            present_at = np.where(began, t1 + r.withdrawal_presentation_hours * 3600, present_at)
    patients.withdrawal.close()
    patients.overdose.close()
    for name, c in zip(("withdrawal_early", "withdrawal_severe"), patients.withdrawal.counts, strict=True):
        counts[name] = int(c)
    for name, c in zip(("overdose_drowsiness", "overdose_respiratory", "overdose_coma"),
                       patients.overdose.counts, strict=True):
        counts[name] = int(c)
    return counts
