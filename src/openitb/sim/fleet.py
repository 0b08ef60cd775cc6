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
from openitb.physiology.params import Patients, population
from openitb.physiology.titration import side_effect_ceiling, titrated_dose
from openitb.pump.controller import draw_true_stroke_nl
from openitb.sim.fleet_patients import FleetPatients, concat
from openitb.sim.fleet_pumps import DAY_S, FleetPumps
from openitb.sim.study import Policy, Study

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

OUTCOMES = (
    "low_alarm", "empty_reservoir", "reservoir_dry", "withdrawal_early", "withdrawal_severe",
    "overdose_drowsiness", "overdose_respiratory", "overdose_coma", "unplanned_visit",
    "catheter_fault", "catheter_fault_partial", "refill", "pocket_fill",
    "withdrawal_reported_above_2ml",
)
# Adverse events caused by the drug (too little or too much), counted together as published
# series count them (docs/calibration.md).
DRUG_EVENTS = ("withdrawal_early", "withdrawal_severe", "overdose_drowsiness",
               "overdose_respiratory", "overdose_coma")
REPORTED_ML = 2.0  # withdrawal while the pump still reports more than this (Neurosurgery 2004)
OCCLUSION_KIND, DISCONNECTION_KIND, PARTIAL_KIND = 1, 2, 3
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
    true_stroke_nl: IntArray  # at the first fill
    stroke_by_refill_nl: IntArray  # (n, refills) the true stroke after each refill (drift)
    fault_gap_s: FloatArray  # (n, MAX_FAULTS) time to each fault from the last repair
    fault_kind: npt.NDArray[np.int8]  # (n, MAX_FAULTS) 1 occlusion, 2 disconnection, 3 partial
    fault_loss: FloatArray  # (n, MAX_FAULTS) share of the flow a partial fault loses
    missed: npt.NDArray[np.bool_]  # (n, refills)
    delay_s: FloatArray  # (n, refills)
    pocket: npt.NDArray[np.bool_]  # (n, refills)

    def __len__(self) -> int:
        return int(self.conc.size)

    def take(self, start: int, stop: int) -> Draws:
        sl = slice(start, stop)
        return Draws(self.patients.take(sl), self.base[sl], self.dose[sl], self.conc[sl],
                     self.capacity_nl[sl], self.nominal_nl[sl], self.true_stroke_nl[sl],
                     self.stroke_by_refill_nl[sl], self.fault_gap_s[sl], self.fault_kind[sl],
                     self.fault_loss[sl], self.missed[sl], self.delay_s[sl], self.pocket[sl])


def study_days(study: Study) -> int:
    return max(1, round(study.years * 365.25))


def _weights(mix: dict[str, float], n: int) -> list[tuple[str, int]]:
    """Whole counts per entry of a weighted mix, in the file's order, summing to ``n``."""
    total = sum(mix.values())
    counts = [(k, math.floor(n * w / total)) for k, w in mix.items()]
    short = n - sum(c for _, c in counts)
    return [(k, c + (1 if i < short else 0)) for i, (k, c) in enumerate(counts)]


def _true_strokes(study: Study, profiles: list[str], which: IntArray, nominal: IntArray,
                  refills: int) -> tuple[IntArray, IntArray]:
    """Each pump's true stroke at the first fill and after every refill (nL)."""
    n = nominal.size
    spec = study.pumps
    tol = np.array([get_pump(profiles[i]).flow_tolerance_pct for i in which])
    lo = np.ceil(nominal * (1 - tol / 100)).astype(np.int64)
    hi = np.floor(nominal * (1 + tol / 100)).astype(np.int64)
    stroke_rng = np.random.default_rng([study.seed, 3])
    if spec.flow_error == "uniform":
        if spec.flow_spread_pct is None:
            first = np.array([draw_true_stroke_nl(get_pump(profiles[i]), stroke_rng)
                              for i in which], dtype=np.int64)
        else:
            a = np.ceil(nominal * (1 - spec.flow_spread_pct / 100))
            b = np.floor(nominal * (1 + spec.flow_spread_pct / 100))
            first = (a + np.floor(stroke_rng.random(n) * (b - a + 1))).astype(np.int64)
        return first, np.repeat(first[:, None], refills, axis=1)
    bias = spec.flow_bias_mean_pct + spec.flow_bias_sd_pct * stroke_rng.standard_normal(n)
    drift = spec.flow_drift_sd_pct * np.random.default_rng([study.seed, 6]).standard_normal(
        (n, refills))
    pct = bias[:, None] + drift
    strokes: IntArray = np.clip(np.round(nominal[:, None] * (1 + pct / 100)), lo[:, None],
                                hi[:, None]).astype(np.int64)
    return strokes[:, 0].copy(), strokes


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
    daily = titrated_dose(patients, pop.target_mas_drop, pop.target_effect_fraction)
    sigma = math.sqrt(math.log1p(pop.titration_cv**2))
    factors = np.array(pop.flex_factors)
    hours = np.diff([*pop.flex_starts_h, 24])
    factors = factors / (factors @ hours / 24.0)  # the steps average to the daily dose
    # Titration stops at side effects: the largest step stays below the ceiling.
    ceiling = side_effect_ceiling(patients, pop.side_effect_margin) / factors.max()
    daily = np.clip(np.minimum(daily * np.exp(sigma * rng.standard_normal(n)), ceiling),
                    pop.dose_min_mcg_per_day, pop.dose_max_mcg_per_day)
    dose_f = daily[:, None] * factors[None, :]
    profiles = list(study.pumps.mix)
    which = np.concatenate([np.full(c, i) for i, (_, c) in enumerate(_weights(study.pumps.mix, n))])
    which = rng.permutation(which)
    capacity = np.array([get_pump(profiles[i]).capacity_nl for i in which], dtype=np.int64)
    nominal = np.array([get_pump(profiles[i]).stroke_volume_nl for i in which], dtype=np.int64)
    refills = int(study.years * 365.25 / 20) + 8  # more appointments than anyone will have
    true, by_refill = _true_strokes(study, profiles, which, nominal, refills)
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
    kinds = np.where(fault_rng.random((n, MAX_FAULTS)) < p_occ, OCCLUSION_KIND,
                     DISCONNECTION_KIND).astype(np.int8)
    partial_rng = np.random.default_rng([study.seed, 7])
    kinds = np.where(partial_rng.random((n, MAX_FAULTS)) < c.partial_share, PARTIAL_KIND,
                     kinds).astype(np.int8)
    loss = partial_rng.uniform(c.partial_loss_min, c.partial_loss_max, (n, MAX_FAULTS))
    r = study.refills
    visit_rng = np.random.default_rng([study.seed, 5])
    missed = visit_rng.random((n, refills)) < r.miss_probability
    delay = visit_rng.exponential(max(r.delay_mean_days, 1e-9) * DAY_S, (n, refills))
    pocket = visit_rng.random((n, refills)) < r.pocket_fill_probability
    return Draws(patients, tuple(base), dose, conc.astype(np.int64), capacity, nominal, true,
                 by_refill, gaps, kinds, loss, missed, delay, pocket)


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
    bridging = np.zeros(n, dtype=bool)
    pocketed_since = np.zeros(n, dtype=bool)  # the last refill went (partly) into the pocket
    days = study_days(study)
    for day in range(days):
        for k, (s0, s1) in enumerate(zip(starts_s, ends_s, strict=True)):
            t0, t1 = day * DAY_S + s0, day * DAY_S + s1
            # Catheter revisions, then new faults.
            fixed = repair_at <= t0
            if fixed.any():
                pumps.set_fault(fixed, "none")
                bridging &= ~fixed
                fault_no = np.where(fixed, np.minimum(fault_no + 1, MAX_FAULTS - 1), fault_no)
                next_fault = np.where(fixed, t0 + d.fault_gap_s[rows, fault_no], next_fault)
                repair_at = np.where(fixed, np.inf, repair_at)
            new_fault = next_fault <= t0
            if new_fault.any():
                kind = d.fault_kind[rows, fault_no]
                pumps.set_fault(new_fault & (kind == OCCLUSION_KIND), "occlusion")
                pumps.set_fault(new_fault & (kind == DISCONNECTION_KIND), "disconnection")
                partial = new_fault & (kind == PARTIAL_KIND)
                pumps.set_fault(partial, "partial", d.fault_loss[rows, fault_no])
                counts["catheter_fault"] += int(new_fault.sum())
                counts["catheter_fault_partial"] += int(partial.sum())
                next_fault = np.where(new_fault, np.inf, next_fault)
                # A partial fault shows as returning spasticity: the patient comes in after a
                # while (sooner if withdrawal signs appear).
                present_at = np.where(partial, np.minimum(
                    present_at, t0 + cath.loss_of_effect_presentation_days * DAY_S), present_at)
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
                if r.bridge_until_revision:
                    bridging |= faulty
            due = appt <= t0
            pocket_mcg = np.zeros(n)
            if due.any():
                counts["refill"] += int(due.sum())
                counts["unplanned_visit"] += int((due & unplanned).sum())
                pumps.refill(due, d.capacity_nl)
                drift_no = np.minimum(refill_no + 1, d.stroke_by_refill_nl.shape[1] - 1)
                pumps.set_true_stroke(due, d.stroke_by_refill_nl[rows, drift_no])
                k_no = np.minimum(refill_no, d.pocket.shape[1] - 1)
                pocketed = due & d.pocket[rows, k_no]
                pocketed_since = np.where(due, pocketed, pocketed_since)
                if pocketed.any():
                    counts["pocket_fill"] += int(pocketed.sum())
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
            hours = (s1 - s0) / 3600.0
            to_csf = step.to_csf_mcg
            if bridging.any():
                to_csf = to_csf + np.where(bridging, daily_dose * hours / 24.0, 0.0)
            patients.step(hours, to_csf, step.to_tissue_mcg + pocket_mcg)
            began, _ = patients.observe(t1 / 3600.0)
            # Withdrawal from a reservoir that is in fact empty while the pump still reports
            # more than 2 mL: a pump that over-infused since its refill (not a pocket fill).
            counts["withdrawal_reported_above_2ml"] += int(np.count_nonzero(
                began & (pumps.fault == 0) & ~pocketed_since & (pumps.res_nl == 0)
                & (pumps.est_nl > round(REPORTED_ML * 1e6))))
            present_at = np.where(began, t1 + r.withdrawal_presentation_hours * 3600, present_at)
    patients.withdrawal.close()
    patients.overdose.close()
    for name, c in zip(("withdrawal_early", "withdrawal_severe"), patients.withdrawal.counts, strict=True):
        counts[name] = int(c)
    for name, c in zip(("overdose_drowsiness", "overdose_respiratory", "overdose_coma"),
                       patients.overdose.counts, strict=True):
        counts[name] = int(c)
    return counts
