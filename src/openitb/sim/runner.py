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

from openitb.drugs import Context, load_library
from openitb.errors import InvalidInput, OpenITBError
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
from openitb.safety import (
    Actor,
    ClinicianBolus,
    PatientFacts,
    Priming,
    ProgramChange,
    Proposal,
    Refill,
    Review,
    Role,
    StartTherapy,
    StopTherapy,
    WireCommand,
    history_from_report,
    pump_state_from_status,
    review,
)
from openitb.sim.scenario import REVIEWED_KINDS, Event, Scenario
from openitb.therapy.prescription import average_dose_rate, parse_prescription
from openitb.therapy.screening import ScreeningDose, evaluate_screening
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters, parse

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


RUNNER_ACTOR = Actor(Role.PHYSICIAN, "scenario")


def scenario_patient_facts(sc: Scenario) -> PatientFacts:
    """The kernel's patient facts for the scenario's named patient (origin from the catalogue;
    a child when the catalogue describes one)."""
    named = catalog().named(sc.patient_name)
    return PatientFacts(named.origin, child=named.description.lower().startswith("child"))


def _product_for(conc: McgPerMl) -> tuple[str, bool]:
    """A library product in this concentration, or the first product declared compounded."""
    lib = load_library()
    for prod in lib.products:
        if any(abs(c.value - conc.value) <= 1e-9 * max(1.0, c.value) for c in prod.concentrations):
            return prod.name, False
    return lib.products[0].name, True


def _proposal(sc: Scenario, pump: PumpController, e: Event, bridge_follows: bool
              ) -> Proposal | None:
    p = e.params
    if e.kind == "refill":
        product, compounded = _product_for(p["concentration"])
        withdrawn = min(pump.reservoir_true_nl / 1e6, pump.profile.capacity.value)
        return Refill(Milliliters(withdrawn), product, p["concentration"], p["volume"],
                      bridge=bridge_follows, prescription=p.get("prescription"),
                      compounded=compounded)
    if e.kind == "program":
        return ProgramChange(p["prescription"], Context.MAINTENANCE)
    if e.kind == "bolus":
        return ClinicianBolus(p["dose"], p["duration"])
    if e.kind == "priming":
        return Priming(None if p["volume"] == "auto" else p["volume"],
                       None if p["duration"] == "auto" else p["duration"])
    if e.kind == "stop":
        return StopTherapy()
    if e.kind == "start":
        return StartTherapy()
    return None


def kernel_review(sc: Scenario, pump: PumpController, proposal: Proposal) -> Review:
    """The safety kernel's review of a scenario event, from the pump's own status report."""
    report = {"serial": "scenario", **pump.status_report()}
    return review(proposal, state=pump_state_from_status(report),
                  history=history_from_report(report["history_24h"]),
                  patient=scenario_patient_facts(sc), actor=RUNNER_ACTOR)


def command_from_wire(c: WireCommand) -> cmd.Command:
    """A reviewed wire command as the controller command it stands for."""
    a = c.arguments
    if c.name == "program":
        return cmd.Program(parse_prescription(a["prescription"]),
                           parse(a["concentration"], McgPerMl, "concentration"))
    if c.name == "refill":
        return cmd.Refill(parse(a["volume"], Milliliters, "volume"),
                          parse(a["concentration"], McgPerMl, "concentration"))
    if c.name == "clinician_bolus":
        return cmd.ClinicianBolus(parse(a["dose"], Micrograms, "dose"),
                                  parse(a["duration"], Hours, "duration"))
    if c.name in ("priming_bolus", "bridge_bolus"):
        kind = cmd.PrimingBolus if c.name == "priming_bolus" else cmd.BridgeBolus
        return kind(parse(a["volume"], Milliliters, "volume"),
                    parse(a["duration"], Hours, "duration"))
    simple: dict[str, cmd.Command] = {"start": cmd.Start(), "stop": cmd.Stop()}
    if c.name in simple:
        return simple[c.name]
    raise InvalidInput("command", c.name, "a command the scenario runner can give")


def _reviewed(sc: Scenario, pump: PumpController, e: Event, entry: dict[str, Any],
              bridge_follows: bool) -> None:
    """Review the event with the kernel, then write exactly its commands, or nothing."""
    proposal = _proposal(sc, pump, e, bridge_follows)
    if proposal is None:
        return
    try:
        rv = kernel_review(sc, pump, proposal)
        rv.gate(confirmed=True, override_reason=e.params.get("override_reason"))
    except OpenITBError as exc:
        entry.update(ok=False, reason=str(exc), refused_by="safety kernel")
        if isinstance(exc, InvalidInput) or "rv" not in locals():
            return
        entry["classification"] = rv.classification.value
        return
    entry["classification"] = rv.classification.value
    if rv.override.required:
        entry["override_reason"] = e.params.get("override_reason")
    if rv.bridge is not None:
        entry["bridge"] = rv.bridge.to_dict()
    version = rv.state_version
    for c in rv.commands:
        why = pump.check_version(version)
        r = pump.handle(command_from_wire(c)) if why is None else cmd.Response(False, why)
        if not r.ok:
            entry.update(ok=False, reason=f"{c.name}: {r.reason}")
            return
        version = pump.state_version


def _commands(sc: Scenario, pump: PumpController, e: Event) -> list[Any]:
    """Events the pump meets from outside (faults, MRI, reset, an interrogation)."""
    p = e.params
    k = e.kind
    if k in ("kink", "leak", "disconnection"):
        # The pump checks the position against the implanted catheter and the fraction's range;
        # a refusal is logged with its reason like any other refused event.
        return [cmd.CatheterFault(k, float(p.get("position_cm", 0.0)), float(p.get("fraction", 1.0)))]
    simple: dict[str, Any] = {
        "occlusion": cmd.CatheterFault("occlusion"),
        "repair": cmd.CatheterFault("none"), "mri_start": cmd.MriStart(), "mri_end": cmd.MriEnd(),
        "interrogate": cmd.ReadStatus(), "reset": cmd.PowerOnReset(),
    }
    return [simple[k]] if k in simple else []


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
        now_events = events_at.get(t, [])
        bridged_at_refill = False
        for i, e in enumerate(now_events):
            entry: dict[str, Any] = {"day": e.day, "kind": e.kind, "label": e.label(), "ok": True,
                                     "reason": ""}
            if e.kind == "pocket_fill":
                pocket_extra += _pocket_fill(pump, e)
            elif e.kind == "lumbar_bolus":
                lumbar.append((t, e.params["dose"].value))
            elif e.kind == "bridge":
                # The kernel plans the bridge with the refill it belongs to (same time).
                if bridged_at_refill:
                    entry["reason"] = "given with the refill (the kernel's bridge plan)"
                else:
                    entry.update(ok=False, reason="a bridge bolus is planned with the refill at "
                                 "a concentration change: put it at the refill's time",
                                 refused_by="safety kernel")
            elif e.kind in REVIEWED_KINDS:
                follows = e.kind == "refill" and any(x.kind == "bridge"
                                                     for x in now_events[i + 1:])
                _reviewed(sc, pump, e, entry, follows)
                bridged_at_refill = bridged_at_refill or (follows and entry["ok"])
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
