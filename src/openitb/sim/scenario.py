"""Scenario files (TOML) parsed into typed values; every field validated with a clear error.

Schema (docs/physiology.md, "Scenarios")::

    name = "Missed refill"            # required
    description = "..."               # optional
    days = 120                        # simulated span, 0 < days <= 3650
    step_minutes = 10                 # coupling interval of pump and patient (1-240)
    seed = 0                          # pump true stroke volume (when manufactured)
    plot_days = [80, 110]             # optional: the days the plot shows

    [patient]
    name = "adult_sci"                # a named patient (itb patient list)
    tip_level = "T10"                 # optional; else [catheter].tip_level or the patient's
    start = "naive"                   # or "steady": at steady state on the first program
    draw_seed = 7                     # optional: one patient drawn from the population around
                                      # the named patient (log-normal spread), with this seed
    count = 1                         # or up to 5000 patients drawn so (a cohort: the output
                                      # gives the median and 5-95 % band, and the fractions
                                      # reaching each adverse stage)

    [pump]                            # a pump scenario, or else a [screening] table
    profile = "itb-40"
    concentration = "2000 mcg/mL"
    volume = "40 mL"
    low_alarm = "2 mL"                # optional
    manufactured = false              # true: true stroke volume drawn from the seed
    battery_days_left = 20            # optional: an old pump whose battery ends after 20 days

    [catheter]
    length_cm = 110
    tip_level = "T10"

    [prescription]                    # the therapy/prescription.py schema
    mode = "continuous"
    dose = "400 mcg/day"

    [screening]                       # instead of [pump]: the 50/75/100 mcg protocol by lumbar puncture
    start_day = 0
    observe_hours = 8

    [[events]]
    day = 90                          # days from the start
    kind = "refill"                   # see EVENT_KINDS
    ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openitb.devices import CatheterProfile, PumpProfile, default_catheter, get_pump
from openitb.errors import InvalidInput
from openitb.physiology.params import catalog
from openitb.physiology.spine import level_position_cm
from openitb.therapy.prescription import Prescription, average_dose_rate, parse_prescription
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters, parse

EVENT_KINDS = {
    "refill": "volume, concentration, [prescription]: a refill; a new concentration reprograms",
    "program": "prescription, [concentration]: a new program",
    "bolus": "dose, duration: a clinician bolus through the pump",
    "bridge": "volume ('auto' or mL), duration ('auto' or h): bridge bolus after a concentration change",
    "priming": "volume, duration: priming bolus",
    "missed_refill": "a refill that was due and did not happen (a marker only)",
    "pocket_fill": "volume, concentration, [fraction]: refill injected into the pocket",
    "occlusion": "the catheter blocks",
    "kink": "fraction: a partial kink, only that share of the flow passes",
    "leak": "position_cm, fraction: that share of the flow leaks to tissue at the position",
    "disconnection": "[position_cm]: the catheter comes apart there: drug goes to the tissue",
    "repair": "the catheter is repaired",
    "mri_start": "an MRI scan starts (rotor stalls)",
    "mri_end": "the MRI scan ends",
    "interrogate": "the programmer reads the pump (resumes after an MRI where needed)",
    "stop": "the pump is stopped",
    "start": "the pump is started",
    "reset": "power-on reset: infusion stops until restarted",
    "lumbar_bolus": "dose: a bolus by lumbar puncture (not through the pump)",
}


# Event kinds the scenario runner passes through the safety kernel (openitb.safety) before the
# pump: a refused one is logged with the kernel's reason and changes nothing.
REVIEWED_KINDS = frozenset({"refill", "program", "bolus", "bridge", "priming", "stop", "start"})


@dataclass(frozen=True)
class Event:
    day: float
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0

    @property
    def hours(self) -> float:
        return self.day * 24.0

    def label(self) -> str:
        parts = [f"{k} {v}" for k, v in self.params.items()
                 if k not in ("prescription", "override_reason")]
        if "prescription" in self.params:
            rx = self.params["prescription"]
            mean = average_dose_rate(rx)
            parts.insert(0, f"{mean}" if rx.mode.value == "continuous" else f"{rx.mode.value} {mean} mean")
        return f"{self.kind}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass(frozen=True)
class PumpSetup:
    profile: PumpProfile
    concentration: McgPerMl
    volume: Milliliters
    low_alarm: Milliliters | None
    manufactured: bool
    battery_days_left: float | None = None


@dataclass(frozen=True)
class Screening:
    start_day: float
    observe_hours: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    days: float
    step_minutes: float
    seed: int
    patient_name: str
    tip_level: str | None
    start: str
    catheter: CatheterProfile
    catheter_length_cm: float
    pump: PumpSetup | None
    prescription: Prescription | None
    screening: Screening | None
    events: tuple[Event, ...]
    plot_window: tuple[float, float] | None = None
    draw_seed: int | None = None
    count: int = 1


def _table(doc: Mapping[str, Any], key: str, required: bool) -> Mapping[str, Any] | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise InvalidInput(key, None, f"a [{key}] table")
        return None
    if not isinstance(v, Mapping):
        raise InvalidInput(key, v, f"a [{key}] table")
    return v


def _num(doc: Mapping[str, Any], key: str, field_: str, lo: float, hi: float,
         default: float | None = None) -> float:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not lo <= v <= hi:
        raise InvalidInput(field_, v, f"a number from {lo:g} to {hi:g}")
    return float(v)


def _only(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(doc) - allowed
    if extra:
        raise InvalidInput(f"{where}{sorted(extra)[0]}", "present",
                           f"allowed keys here: {', '.join(sorted(allowed))}")


def _auto_or(v: Any, cls: type[Milliliters] | type[Hours], field_: str) -> Any:
    if v == "auto":
        return "auto"
    return parse(v, cls, field_)


def _event(doc: Any, i: int, days: float) -> Event:
    where = f"events[{i}]"
    if not isinstance(doc, Mapping):
        raise InvalidInput(where, doc, "a table with day and kind")
    kind = doc.get("kind")
    if kind not in EVENT_KINDS:
        raise InvalidInput(f"{where}.kind", kind, "one of " + ", ".join(EVENT_KINDS))
    day = _num(doc, "day", f"{where}.day", 0.0, days)
    p: dict[str, Any] = {}
    f = f"{where}."
    # Events the safety kernel reviews may carry the override reason a clinician would give.
    if kind in REVIEWED_KINDS and "override_reason" in doc:
        reason = doc["override_reason"]
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise InvalidInput(f + "override_reason", reason, "text of 1 to 200 characters")
        p["override_reason"] = reason.strip()
    ov = {"override_reason"} if kind in REVIEWED_KINDS else set()
    if kind in ("refill", "pocket_fill"):
        _only(doc, {"day", "kind", "volume", "concentration", "prescription", "fraction"} | ov, f)
        p["volume"] = parse(doc.get("volume"), Milliliters, f + "volume")
        p["concentration"] = parse(doc.get("concentration"), McgPerMl, f + "concentration")
        if p["concentration"].value <= 0:
            raise InvalidInput(f + "concentration", doc.get("concentration"), "above 0 mcg/mL")
        if "prescription" in doc:
            p["prescription"] = parse_prescription(doc["prescription"])
        if kind == "pocket_fill":
            p["fraction"] = _num(doc, "fraction", f + "fraction", 0.0, 1.0, 1.0)
    elif kind == "program":
        _only(doc, {"day", "kind", "prescription", "concentration"} | ov, f)
        p["prescription"] = parse_prescription(doc.get("prescription", {}))
        if "concentration" in doc:
            p["concentration"] = parse(doc.get("concentration"), McgPerMl, f + "concentration")
    elif kind == "bolus":
        _only(doc, {"day", "kind", "dose", "duration"} | ov, f)
        p["dose"] = parse(doc.get("dose"), Micrograms, f + "dose")
        p["duration"] = parse(doc.get("duration"), Hours, f + "duration")
    elif kind in ("bridge", "priming"):
        _only(doc, {"day", "kind", "volume", "duration"} | ov, f)
        p["volume"] = _auto_or(doc.get("volume", "auto"), Milliliters, f + "volume")
        p["duration"] = _auto_or(doc.get("duration", "auto"), Hours, f + "duration")
    elif kind in ("kink", "leak", "disconnection"):
        keys = {"day", "kind", "position_cm", "fraction"} if kind != "disconnection" else {
            "day", "kind", "position_cm"}
        _only(doc, keys, f)
        if kind != "kink":
            p["position_cm"] = _num(doc, "position_cm", f + "position_cm", 0.0, 1000.0, 0.0)
        if kind == "kink":
            p["fraction"] = _num(doc, "fraction", f + "fraction", 0.0, 1.0)
        elif kind == "leak":
            p["fraction"] = _num(doc, "fraction", f + "fraction", 0.0, 1.0)
    elif kind == "lumbar_bolus":
        _only(doc, {"day", "kind", "dose"}, f)
        p["dose"] = parse(doc.get("dose"), Micrograms, f + "dose")
        if not 0 < p["dose"].value <= 2000:
            raise InvalidInput(f + "dose", doc.get("dose"), "a bolus above 0 and at most 2000 mcg")
    else:
        _only(doc, {"day", "kind"} | ov, f)
    return Event(day, kind, p, i)


def parse_scenario(doc: Mapping[str, Any]) -> Scenario:
    """Validate a scenario document (already read from TOML); nothing is run."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("scenario", doc, "a TOML document")
    _only(doc, {"name", "description", "days", "step_minutes", "seed", "patient", "pump",
                "catheter", "prescription", "screening", "events", "plot_days"}, "")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", name, "a non-empty name for the scenario")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("description", description, "text")
    days = _num(doc, "days", "days", 1e-3, 3650.0)
    step = _num(doc, "step_minutes", "step_minutes", 1.0, 240.0, 10.0)
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("seed", seed, "a whole number 0 or more")

    pt = _table(doc, "patient", False) or {}
    _only(pt, {"name", "tip_level", "start", "draw_seed", "count"}, "patient.")
    count = pt.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 5000:
        raise InvalidInput("patient.count", count, "a whole number of patients from 1 to 5000")
    draw_seed = pt.get("draw_seed")
    if draw_seed is not None and (isinstance(draw_seed, bool) or not isinstance(draw_seed, int)
                                  or draw_seed < 0):
        raise InvalidInput("patient.draw_seed", draw_seed, "a whole number 0 or more")
    start = pt.get("start", "naive")
    if start not in ("naive", "steady"):
        raise InvalidInput("patient.start", start,
                           "'naive' (no drug yet) or 'steady' (at steady state on the first program)")
    patient_name = pt.get("name", catalog().default_patient)
    catalog().named(patient_name if isinstance(patient_name, str) else None)
    if not isinstance(patient_name, str):
        raise InvalidInput("patient.name", patient_name, "a named patient")
    cath_doc = _table(doc, "catheter", False) or {}
    _only(cath_doc, {"length_cm", "tip_level", "model"}, "catheter.")
    cath = default_catheter() if "model" not in cath_doc else None
    if cath is None:
        from openitb.devices import load_catalog as load_devices
        cath = load_devices().catheter(str(cath_doc["model"]), "catheter.model")
    length = _num(cath_doc, "length_cm", "catheter.length_cm", 1.0, 500.0, 110.0)
    cath.check_length(length, "catheter.length_cm")
    tip = pt.get("tip_level", cath_doc.get("tip_level"))
    if tip is not None:
        level_position_cm(tip, "catheter.tip_level" if "tip_level" not in pt else "patient.tip_level")

    pump_doc = _table(doc, "pump", False)
    pump: PumpSetup | None = None
    rx: Prescription | None = None
    if pump_doc is not None:
        _only(pump_doc, {"profile", "concentration", "volume", "low_alarm", "manufactured",
                         "battery_days_left"}, "pump.")
        profile = get_pump(str(pump_doc.get("profile", "itb-40")))
        conc = parse(pump_doc.get("concentration"), McgPerMl, "pump.concentration")
        if conc.value <= 0:
            raise InvalidInput("pump.concentration", pump_doc.get("concentration"), "above 0 mcg/mL")
        vol = profile.check_volume(parse(pump_doc.get("volume"), Milliliters, "pump.volume"))
        low = pump_doc.get("low_alarm")
        low_ml = (profile.check_low_alarm(parse(low, Milliliters, "pump.low_alarm"))
                  if low is not None else None)
        manufactured = pump_doc.get("manufactured", False)
        if not isinstance(manufactured, bool):
            raise InvalidInput("pump.manufactured", manufactured, "true or false")
        battery_days = (None if "battery_days_left" not in pump_doc else
                        _num(pump_doc, "battery_days_left", "pump.battery_days_left", 0.5, 3650.0))
        pump = PumpSetup(profile, conc, vol, low_ml, manufactured, battery_days)
        rx_doc = _table(doc, "prescription", True)
        assert rx_doc is not None
        rx = parse_prescription(rx_doc)

    sc_doc = _table(doc, "screening", False)
    screening: Screening | None = None
    if sc_doc is not None:
        _only(sc_doc, {"start_day", "observe_hours"}, "screening.")
        screening = Screening(_num(sc_doc, "start_day", "screening.start_day", 0.0, days, 0.0),
                              _num(sc_doc, "observe_hours", "screening.observe_hours", 4.0, 8.0, 8.0))
    if pump is None and screening is None:
        raise InvalidInput("pump", None, "a [pump] table or a [screening] table")
    if pump is not None and screening is not None:
        raise InvalidInput("screening", "with a [pump] table",
                           "a screening trial runs without a pump; in a pump scenario give "
                           "lumbar_bolus events instead")

    raw = doc.get("events", [])
    if not isinstance(raw, list):
        raise InvalidInput("events", raw, "a list of [[events]] tables")
    events = tuple(sorted((_event(e, i, days) for i, e in enumerate(raw)),
                          key=lambda e: (e.day, e.index)))
    if pump is None:
        for e in events:
            if e.kind != "lumbar_bolus":
                raise InvalidInput(f"events[{e.index}].kind", e.kind,
                                   "only lumbar_bolus without a [pump] table")
    window = doc.get("plot_days")
    plot_window: tuple[float, float] | None = None
    if window is not None:
        ok = (isinstance(window, list) and len(window) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
              and 0 <= window[0] < window[1] <= days)
        if not ok:
            raise InvalidInput("plot_days", window, f"[first, last] days with 0 <= first < last <= {days:g}")
        plot_window = (float(window[0]), float(window[1]))
    if count > 1 and pump is None:
        raise InvalidInput("patient.count", count, "1 for a screening trial")
    if start == "steady" and pump is None:
        raise InvalidInput("patient.start", start, "'naive' for a screening trial without a pump")
    return Scenario(name.strip(), description, days, step, seed, patient_name,
                    tip if isinstance(tip, str) else None, start, cath, length, pump, rx, screening, events,
                    plot_window, draw_seed, count)
