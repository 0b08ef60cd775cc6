"""Run a scenario: the pump controller and the patient model on one virtual clock.

The pump is advanced interval by interval (``step_minutes``, plus a cut at every event); the
drug that reached the intrathecal space in an interval (the difference of the pump's
``delivered_mcg`` counter) divided by its length is the piecewise-constant input to the patient,
and the drug that went to the tissue (``tissue_mcg``; plus a pocket fill) the subcutaneous input.
The patient does not act on the pump, so the patient is solved after the pump, exactly, in one
pass (:class:`openitb.physiology.solver.ExactSolver`).

The screening trial (50, 75, 100 mcg by lumbar puncture, 24 h apart) is decided step by step:
after each bolus the MAS before it and its lowest value within the observation window are scored
with :func:`openitb.therapy.screening.evaluate_screening`, and the protocol stops at the first
response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from openitb.drugs import load_library
from openitb.errors import InvalidInput
from openitb.physiology.measures import BOLUS_INJECTION_H, cohort_series, series
from openitb.physiology.model import (
    INTRATHECAL,
    N_INPUTS,
    READOUTS,
    SUBCUTANEOUS,
    build_system,
    steady_state,
)
from openitb.physiology.params import Patients, catalog, patient, population
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, zero_error_pump
from openitb.sim.scenario import Event, Scenario
from openitb.therapy.prescription import average_dose_rate
from openitb.therapy.refill import bridge_bolus, priming_bolus
from openitb.therapy.screening import ScreeningDose, evaluate_screening
from openitb.units import Hours, McgPerMl, Milliliters

Array = npt.NDArray[np.float64]
START = datetime(2026, 1, 1, tzinfo=UTC)
Progress = Callable[[float], None]


@dataclass
class SimResult:
    scenario: Scenario
    times_h: Array
    series: dict[str, Array]
    events: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    screening: dict[str, Any] | None = None
    cohort: dict[str, Any] | None = None  # many patients: 5-95 % bands and stage fractions

    @property
    def days(self) -> Array:
        return self.times_h / 24.0

    def first_time(self, key: str, level: float, after_h: float = 0.0) -> float | None:
        """First time (h) ``series[key]`` reaches ``level`` at or after ``after_h``."""
        y = self.series[key]
        idx = np.nonzero((y >= level) & (self.times_h >= after_h))[0]
        return float(self.times_h[idx[0]]) if idx.size else None

    def summary(self) -> dict[str, Any]:
        d = catalog().definitions
        s = self.series
        dt = np.diff(self.times_h)
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "patient": self.scenario.patient_name,
            "days": self.scenario.days,
            "delivered_to_csf_mcg": float(np.sum(s["dose_at_tip_mcg_per_h"][:-1] * dt)),
            "delivered_to_tissue_mcg": float(np.sum(s["tissue_mcg_per_h"][:-1] * dt)),
            "mas_min": float(np.min(s["mas"])),
            "mas_max": float(np.max(s["mas"])),
            "mas_end": float(s["mas"][-1]),
            "csf_lumbar_max_ng_per_ml": float(np.max(s["csf_lumbar_ng_per_ml"])),
            "withdrawal_max": float(np.max(s["withdrawal"])),
            "overdose_max": float(np.max(s["overdose"])),
            "withdrawal_early_at_day": _day(self.first_time("withdrawal", d.withdrawal_early)),
            "withdrawal_severe_at_day": _day(self.first_time("withdrawal", d.withdrawal_severe)),
            "overdose_drowsiness_at_day": _day(self.first_time("overdose", d.overdose_drowsiness)),
            "overdose_respiratory_at_day": _day(self.first_time("overdose", d.overdose_respiratory)),
            "overdose_coma_at_day": _day(self.first_time("overdose", d.overdose_coma)),
            "alarms": self.alarms,
            "events": self.events,
        }
        if self.screening is not None:
            out["screening"] = self.screening
        if self.cohort is not None:
            out["cohort"] = {"patients": self.cohort["patients"],
                             "fraction_reaching": self.cohort["fractions"],
                             "note": "series and the figures above are the median patient"}
        return out

    def table(self) -> dict[str, list[float]]:
        cols = {"time_h": self.times_h.tolist()}
        cols.update({k: v.tolist() for k, v in self.series.items()})
        return cols


def _day(h: float | None) -> float | None:
    return None if h is None else round(h / 24.0, 4)


def _at(hours: float) -> datetime:
    return START + timedelta(seconds=round(hours * 3600))


def scenario_patient(sc: Scenario) -> Patients:
    """The named patient, or one drawn from the population around it (``draw_seed``)."""
    if sc.draw_seed is None and sc.count == 1:
        return patient(sc.patient_name, tip_level=sc.tip_level)
    return population(sc.count, np.random.default_rng(sc.draw_seed or 0), sc.patient_name,
                      tip_level=sc.tip_level)


def _pump_for(sc: Scenario) -> PumpController:
    assert sc.pump is not None
    cath_nl = round(sc.catheter.volume(sc.catheter_length_cm).value * 1_000_000)
    if sc.pump.manufactured:
        pump = PumpController.manufacture(sc.pump.profile, START, np.random.default_rng(sc.seed),
                                          catheter_volume_nl=cath_nl)
    else:
        pump = zero_error_pump(sc.pump.profile, START, catheter_volume_nl=cath_nl)
    setup: list[Any] = [cmd.Refill(sc.pump.volume, sc.pump.concentration)]
    if sc.pump.low_alarm is not None:
        setup.append(cmd.SetLowAlarm(sc.pump.low_alarm))
    assert sc.prescription is not None
    setup += [cmd.Program(sc.prescription, sc.pump.concentration), cmd.Start()]
    for c in setup:
        r = pump.handle(c)
        if not r.ok:
            raise InvalidInput("pump", type(c).__name__, r.reason)
    if sc.pump.battery_days_left is not None:
        _age_battery(pump, sc.pump.battery_days_left)
    return pump


def _age_battery(pump: PumpController, days_left: float) -> None:
    """An old pump: leave only the charge that the running program uses in ``days_left`` days,
    so that the controller itself raises ERI and, at the end, end of service. (The pump has no
    command for this; a manufacture-time battery state would be the clean way.)"""
    prof = pump.profile
    per_day = prof.battery_idle_ua * 24 + prof.battery_stroke_uah * pump.daily_strokes()
    capacity = prof.battery_capacity_mah * 1000
    pump.battery_used_uah = max(0.0, capacity - per_day * days_left)


def _commands(sc: Scenario, pump: PumpController, e: Event) -> list[Any]:
    p = e.params
    k = e.kind
    if k == "refill":
        out: list[Any] = [cmd.Refill(p["volume"], p["concentration"])]
        rx = p.get("prescription") or pump.prescription
        changed = "prescription" in p or p["concentration"].value != pump.program_conc
        if rx is not None and changed:
            out.append(cmd.Program(rx, p["concentration"]))
        return out
    if k == "program":
        conc = p.get("concentration") or McgPerMl(pump.program_conc)
        return [cmd.Program(p["prescription"], conc)]
    if k == "bolus":
        return [cmd.ClinicianBolus(p["dose"], p["duration"])]
    if k in ("bridge", "priming"):
        assert sc.pump is not None
        if k == "priming":
            auto = priming_bolus(sc.pump.profile, sc.catheter, sc.catheter_length_cm)
            vol, dur = auto.priming_volume, auto.priming_duration
        else:
            old = McgPerMl(_previous_concentration(pump))
            new = McgPerMl(pump.reservoir_conc)
            rx = pump.prescription
            if rx is None or old.value == new.value:
                return []
            b = bridge_bolus(sc.pump.profile, sc.catheter, sc.catheter_length_cm, old, new,
                             average_dose_rate(rx))
            vol, dur = b.bridge_volume, b.bridge_duration
        vol = vol if p["volume"] == "auto" else p["volume"]
        dur = dur if p["duration"] == "auto" else p["duration"]
        cls = cmd.BridgeBolus if k == "bridge" else cmd.PrimingBolus
        return [cls(Milliliters(vol.value), Hours(min(dur.value, 24.0)))]
    if k in ("kink", "leak", "disconnection"):
        # The pump checks the position against the implanted catheter and the fraction's range;
        # a refusal is logged with its reason like any other refused event.
        return [cmd.CatheterFault(k, float(p.get("position_cm", 0.0)), float(p.get("fraction", 1.0)))]
    simple: dict[str, Any] = {
        "occlusion": cmd.CatheterFault("occlusion"),
        "repair": cmd.CatheterFault("none"), "mri_start": cmd.MriStart(), "mri_end": cmd.MriEnd(),
        "interrogate": cmd.ReadStatus(), "stop": cmd.Stop(), "start": cmd.Start(),
        "reset": cmd.PowerOnReset(),
    }
    return [simple[k]] if k in simple else []


def _previous_concentration(pump: PumpController) -> float:
    """The concentration of the drug now at the front of the path (what the bridge pushes out)."""
    return pump.catheter.tip_concentration() or pump.reservoir_conc


def run_scenario(sc: Scenario, progress: Progress | None = None) -> SimResult:
    """Run ``sc``; ``progress`` (if given) is called with the fraction done (0 to 1)."""
    if sc.pump is None:
        return _screening_only(sc, progress)
    pump = _pump_for(sc)
    horizon = sc.days * 24.0
    step = sc.step_minutes / 60.0
    grid = np.arange(0.0, horizon, step)
    cut_times = sorted({e.hours for e in sc.events})
    times = np.unique(np.concatenate([grid, cut_times, [horizon]]))
    times = times[(times >= 0) & (times <= horizon)]
    events_at: dict[float, list[Event]] = {}
    for e in sc.events:
        events_at.setdefault(e.hours, []).append(e)
    m = times.size - 1
    rates = np.zeros((m, N_INPUTS))
    reservoir = np.zeros(m + 1)
    estimate = np.zeros(m + 1)
    log: list[dict[str, Any]] = []
    lumbar: list[tuple[float, float]] = []
    last_delivered, last_tissue = pump.delivered_mcg, pump.tissue_mcg
    pocket_extra = 0.0
    every = max(1, m // 200)
    for k in range(m + 1):
        t = float(times[k])
        if k > 0:
            pump.advance(_at(t))
            dt = t - float(times[k - 1])
            rates[k - 1, INTRATHECAL] = max(0.0, pump.delivered_mcg - last_delivered) / dt
            rates[k - 1, SUBCUTANEOUS] = (max(0.0, pump.tissue_mcg - last_tissue) + pocket_extra) / dt
            last_delivered, last_tissue, pocket_extra = pump.delivered_mcg, pump.tissue_mcg, 0.0
        for e in events_at.get(t, []):
            entry: dict[str, Any] = {"day": e.day, "kind": e.kind, "label": e.label(), "ok": True,
                                     "reason": ""}
            if e.kind == "pocket_fill":
                pocket_extra += _pocket_fill(pump, e)
            elif e.kind == "lumbar_bolus":
                lumbar.append((t, e.params["dose"].value))
            for c in _commands(sc, pump, e):
                r = pump.handle(c)
                if not r.ok:
                    entry["ok"] = False
                    entry["reason"] = r.reason
            log.append(entry)
        reservoir[k] = pump.reservoir_true_nl / 1e6
        estimate[k] = pump.reservoir_estimate_nl / 1e6
        if progress is not None and (k % every == 0 or k == m):
            progress(0.8 * k / max(m, 1))
    pump_times = times
    times, rates = _apply_lumbar(times, rates, lumbar)
    reservoir = np.interp(times, pump_times, reservoir)
    estimate = np.interp(times, pump_times, estimate)
    m = times.size - 1
    system = build_system(scenario_patient(sc))
    x0 = None
    if sc.start == "steady" and sc.prescription is not None:
        x0 = steady_state(system, np.array([average_dose_rate(sc.prescription).value / 24.0, 0.0]))
    cohort: dict[str, Any] | None = None
    if sc.count > 1:
        bands, peaks = cohort_series(system, times, rates, READOUTS, x0=x0)
        result_series = {k: v[1] for k, v in bands.items()}  # the median at every time
        d = catalog().definitions
        cohort = {
            "patients": sc.count,
            "bands": {k: (v[0], v[2]) for k, v in bands.items()},
            "fractions": {
                "withdrawal_early": float(np.mean(peaks["withdrawal"] >= d.withdrawal_early)),
                "withdrawal_severe": float(np.mean(peaks["withdrawal"] >= d.withdrawal_severe)),
                "overdose_drowsiness": float(np.mean(peaks["overdose"] >= d.overdose_drowsiness)),
                "overdose_respiratory": float(np.mean(peaks["overdose"] >= d.overdose_respiratory)),
                "overdose_coma": float(np.mean(peaks["overdose"] >= d.overdose_coma)),
            },
        }
    else:
        out = series(system, times, rates, READOUTS, x0=x0)
        result_series = {k: v[0] for k, v in out.items()}
    if progress is not None:
        progress(1.0)
    tip = np.append(rates[:, INTRATHECAL], rates[-1, INTRATHECAL] if m else 0.0)
    tissue = np.append(rates[:, SUBCUTANEOUS], rates[-1, SUBCUTANEOUS] if m else 0.0)
    result_series["dose_at_tip_mcg_per_h"] = tip
    result_series["tissue_mcg_per_h"] = tissue
    result_series["reservoir_ml"] = reservoir
    result_series["reservoir_estimate_ml"] = estimate
    alarms = [{"kind": a.kind, "critical": a.critical,
               "day": round((datetime.fromisoformat(a.raised_at) - START).total_seconds() / 86400, 4),
               "cleared_day": (round((datetime.fromisoformat(a.cleared_at) - START).total_seconds()
                                     / 86400, 4) if a.cleared_at else None)}
              for a in pump.alarms.history]
    return SimResult(sc, times, result_series, log, alarms, cohort=cohort)


def _pocket_fill(pump: PumpController, e: Event) -> float:
    """The refill went (partly) into the pocket beside the reservoir: the clinician believes the
    pump was filled, so the pump is told so (Refill); then the pump's ``PocketFill`` environment
    event takes ``fraction`` of the volume out of the true reservoir into the tissue, where the
    pump's ``tissue_mcg`` counts it (the subcutaneous input). Returns the extra tissue input
    beyond what the pump counts: none."""
    vol, conc, frac = e.params["volume"], e.params["concentration"], e.params["fraction"]
    r = pump.handle(cmd.Refill(vol, conc))
    if not r.ok:
        return 0.0
    rx = e.params.get("prescription") or pump.prescription
    if rx is not None and ("prescription" in e.params or conc.value != pump.program_conc):
        pump.handle(cmd.Program(rx, conc))
    pocket = round(vol.value * frac * 1_000_000) / 1_000_000
    if pocket > 0:
        pump.handle(cmd.PocketFill(Milliliters(pocket)))
    return 0.0


def _apply_lumbar(times: Array, rates: Array, boluses: list[tuple[float, float]]) -> tuple[Array, Array]:
    """Add lumbar-puncture boluses (injected over a minute) to the intrathecal input."""
    if not boluses:
        return times, rates
    cuts = sorted({b[0] for b in boluses} | {b[0] + BOLUS_INJECTION_H for b in boluses})
    new_times = np.unique(np.concatenate([times, [c for c in cuts if c < times[-1]]]))
    idx = np.searchsorted(times, new_times[:-1], side="right") - 1
    new_rates = rates[idx].copy()
    for t0, dose in boluses:
        j = int(np.searchsorted(new_times, t0))
        if j < new_rates.shape[0]:
            new_rates[j, INTRATHECAL] += dose / (new_times[j + 1] - new_times[j])
    return new_times, new_rates


def _screening_only(sc: Scenario, progress: Progress | None) -> SimResult:
    assert sc.screening is not None
    system = build_system(scenario_patient(sc))
    lib = load_library()
    d = catalog().definitions
    t0 = sc.screening.start_day * 24.0
    interval = lib.screening_interval_hours
    horizon = sc.days * 24.0
    step = min(sc.step_minutes / 60.0, 0.25)
    done: list[ScreeningDose] = []
    doses_given: list[tuple[float, float]] = [(e.hours, e.params["dose"].value) for e in sc.events]
    rows: list[dict[str, Any]] = []
    outcome = None
    for i, dose in enumerate(lib.screening_doses):
        at = t0 + i * interval
        if at + sc.screening.observe_hours > horizon:
            break
        doses_given.append((at, dose.value))
        times = np.arange(0.0, horizon + step / 2, step)
        rates = np.zeros((times.size - 1, N_INPUTS))
        t, r = _apply_lumbar(times, rates, doses_given)
        s = series(system, t, r, ("mas",))["mas"][0]
        before = float(np.interp(at, t, s))
        window = (t >= at) & (t <= at + sc.screening.observe_hours)
        after = float(np.min(s[window]))
        drop = before - s
        effect = (t >= at) & (drop >= d.onset_mas_drop)
        effect_hours = float(np.sum(np.diff(t, append=t[-1])[effect]))
        done.append(ScreeningDose(dose, [round(before, 3)], [round(after, 3)], effect_hours))
        outcome = evaluate_screening(done)
        rows.append({"day": round(at / 24, 4), "dose_mcg": dose.value, "mas_before": round(before, 3),
                     "mas_after": round(after, 3), "mas_drop": round(before - after, 3),
                     "effect_hours": round(effect_hours, 2)})
        if progress is not None:
            progress(0.3 * (i + 1))
        if outcome.responder:
            break
    times = np.arange(0.0, horizon + step / 2, step)
    rates = np.zeros((times.size - 1, N_INPUTS))
    t, r = _apply_lumbar(times, rates, doses_given)
    out = series(system, t, r, READOUTS)
    result_series = {k: v[0] for k, v in out.items()}
    result_series["dose_at_tip_mcg_per_h"] = np.append(r[:, INTRATHECAL], 0.0)
    result_series["tissue_mcg_per_h"] = np.zeros(t.size)
    events = [{"day": round(a / 24, 4), "kind": "lumbar_bolus", "label": f"lumbar bolus {b:g} mcg",
               "ok": True, "reason": ""} for a, b in doses_given]
    screening: dict[str, Any] = {"doses": rows}
    if outcome is not None:
        screening.update({
            "responder": outcome.responder,
            "effective_dose_mcg": outcome.effective_dose.value if outcome.effective_dose else None,
            "first_pump_dose_mcg_per_day": (outcome.first_dose.dose_per_day.value
                                            if outcome.first_dose else None),
            "first_dose_rule": outcome.first_dose.rule if outcome.first_dose else None,
            "reason": outcome.reason,
        })
    if progress is not None:
        progress(1.0)
    return SimResult(sc, t, result_series, events, [], screening)
