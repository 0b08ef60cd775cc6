"""Use cases of the ITB clinic. Each runs inside one :class:`UnitOfWork` (one transaction),
checks the actor's permission first, validates every outside value (naming the field, what was
given and what is allowed), and writes an audit entry (before and after) for each change."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from openitb.clinic.accounts import require, require_patient_access
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.pumps import PumpGateway, PumpReading
from openitb.clinic.telemetry_gateway import TelemetryPumpGateway
from openitb.clinic.uow import Conflict, UnitOfWork, snapshot
from openitb.devices import get_pump, load_catalog
from openitb.drugs import Context, Origin, Population, load_library
from openitb.errors import InvalidInput, RefusedOperation
from openitb.programmer.review import Review, review_program
from openitb.pump.alarms import CRITICAL
from openitb.store.models import (
    Alarm,
    MriRecord,
    Patient,
    Program,
    Pump,
    Refill,
    Screening,
    Visit,
)
from openitb.therapy.prescription import Continuous, Prescription, parse_prescription
from openitb.therapy.refill import (
    DEFAULT_MAX_INTERVAL_DAYS,
    Bridge,
    Discrepancy,
    bridge_bolus,
    check_discrepancy,
    priming_bolus,
    project_refill,
)
from openitb.therapy.screening import ScreeningDose, evaluate_screening
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

# Every pump operation goes through the programmer over telemetry (see telemetry_gateway.py);
# ControllerGateway (pumps.py) drives the controller directly, for tests and benchmarks.
GATEWAY: PumpGateway = TelemetryPumpGateway()

STAGES = ("candidate", "screening", "screened", "not_candidate", "implanted", "explanted")
CHECKLIST = {
    "screening_response": "positive response to a screening bolus",
    "body_size": "body size and tissue depth suit an implanted pump",
    "no_infection": "no active infection",
    "no_allergy": "no allergy to baclofen",
    "interferes_with_function": "spasticity interferes with function or care",
}
MUSCLE_GROUPS = ("hip_flexors", "hip_adductors", "knee_extensors", "knee_flexors",
                 "ankle_plantarflexors", "elbow_flexors", "wrist_flexors")
_LEVEL = re.compile(r"^(C[1-8]|T([1-9]|1[0-2])|L[1-5]|S[1-5])$")


def set_gateway(gateway: PumpGateway) -> None:
    """Swap the pump port (e.g. programmer over telemetry)."""
    global GATEWAY
    GATEWAY = gateway


# ---- validation helpers ----------------------------------------------------------------------
def _text(fields: Mapping[str, Any], key: str, *, max_len: int = 200, required: bool = True) -> str:
    raw = fields.get(key)
    value = "" if raw is None else str(raw).strip()
    if required and not value:
        raise InvalidInput(key, raw, f"a non-empty text up to {max_len} characters")
    if len(value) > max_len:
        raise InvalidInput(key, f"{len(value)} characters", f"at most {max_len} characters")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise InvalidInput(key, value, "text without control characters")
    return value


def _number(fields: Mapping[str, Any], key: str, lo: float, hi: float, unit: str = "") -> float:
    raw = fields.get(key)
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        raise InvalidInput(key, raw, f"a number from {lo:g} to {hi:g}{' ' + unit if unit else ''}") from None
    if not lo <= value <= hi or value != value:
        raise InvalidInput(key, raw, f"a number from {lo:g} to {hi:g}{' ' + unit if unit else ''}")
    return value


def _flag(fields: Mapping[str, Any], key: str) -> bool:
    raw = fields.get(key, False)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("", "0", "false", "off", "no", "none"):
        return False
    raise InvalidInput(key, raw, "true or false")


def _choice(fields: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    raw = fields.get(key)
    value = str(raw).strip().lower() if raw is not None else ""
    if value not in allowed:
        raise InvalidInput(key, raw, f"one of {', '.join(allowed)}")
    return value


def _date(fields: Mapping[str, Any], key: str) -> date:
    raw = fields.get(key)
    try:
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw).strip())
    except ValueError:
        raise InvalidInput(key, raw, "a date as YYYY-MM-DD") from None


def _level(value: str, key: str) -> str:
    v = value.strip().upper()
    if v and not _LEVEL.match(v):
        raise InvalidInput(key, value, "a spinal level such as C5, T4, T10 or L2 (or empty)")
    return v


def _high_injury(level: str) -> bool:
    """T6 or above (cervical, or thoracic 1-6)."""
    return bool(level) and (level[0] == "C" or (level[0] == "T" and int(level[1:]) <= 6))


# ---- patients --------------------------------------------------------------------------------
def _patient(uow: UnitOfWork, patient_id: object) -> Patient:
    p: Patient = uow.get(Patient, patient_id, "patient")
    require_patient_access(uow.actor, p.id)
    return p


def _patient_values(fields: Mapping[str, Any], today: date) -> dict[str, Any]:
    birth = _date(fields, "birth_date")
    if not date(1900, 1, 1) <= birth <= today:
        raise InvalidInput("birth_date", birth.isoformat(), f"a date from 1900-01-01 to {today}")
    origin = _choice(fields, "origin", tuple(o.value for o in Origin))
    age = (today - birth).days / 365.25
    level = _level(_text(fields, "injury_level", max_len=10, required=False), "injury_level")
    return {
        "name": _text(fields, "name"),
        "birth_date": birth,
        "origin": origin,
        "population": "pediatric" if age < 12 else origin,
        "diagnosis": _text(fields, "diagnosis", required=False),
        "weight_kg": _number(fields, "weight_kg", 5, 300, "kg"),
        "injury_level": level,
        "risk_high_injury": _high_injury(level) or _flag(fields, "risk_high_injury"),
        "risk_communication": _flag(fields, "risk_communication"),
        "risk_prior_withdrawal": _flag(fields, "risk_prior_withdrawal"),
        "emergency_contact": _text(fields, "emergency_contact", required=False),
    }


def register_patient(uow: UnitOfWork, fields: Mapping[str, Any]) -> Patient:
    uow.action = "register_patient"  # a refusal is logged as what was tried
    require(uow.actor, "edit_patient", uow)
    values = _patient_values(fields, uow.now.date())
    mrn = _text(fields, "mrn", max_len=40)
    taken = f"mrn {mrn!r} is already registered"
    if uow.session.scalar(select(Patient).where(Patient.mrn == mrn)) is not None:
        raise RefusedOperation(taken, code="conflict")
    p = Patient(mrn=mrn, created_at=uow.now, stage="candidate", checklist={}, **values)
    uow.session.add(p)
    uow.flush(taken)  # registered at the same moment by someone else: the unique index says so
    _visit(uow, p.id, "registration", f"registered as a candidate ({p.origin} origin)")
    uow.audit("register_patient", "patient", p.id, None, snapshot(p))
    return p


def update_patient(uow: UnitOfWork, patient_id: object, expected_version: object,
                   fields: Mapping[str, Any]) -> Patient:
    """Edit demographics and risk factors; refuse if the record changed since it was read."""
    uow.action = "update_patient"
    require(uow.actor, "edit_patient", uow)
    p = _patient(uow, patient_id)
    version = int(_number({"version": expected_version}, "version", 1, 1e12))
    if p.version != version:
        raise Conflict(
            f"patient {p.id} was changed by someone else (version {p.version}, you edited "
            f"version {version}); nothing was saved: reload it and enter your change again")
    before = snapshot(p)
    merged = {k: getattr(p, k) for k in ("name", "birth_date", "origin", "diagnosis", "weight_kg",
                                         "injury_level", "risk_high_injury", "risk_communication",
                                         "risk_prior_withdrawal", "emergency_contact")}
    merged.update({k: v for k, v in fields.items() if k in merged})
    for key, value in _patient_values(merged, uow.now.date()).items():
        setattr(p, key, value)
    if not uow.session.is_modified(p):
        uow.claim(p)  # an edit that changes nothing still checks (and moves) the version
    uow.session.flush()  # the version check happens here (UPDATE ... WHERE version = ?)
    uow.audit("update_patient", "patient", p.id, before, snapshot(p))
    return p


def set_checklist(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Patient:
    require(uow.actor, "checklist", uow)
    p = _patient(uow, patient_id)
    before = snapshot(p)
    items: dict[str, Any] = {key: _flag(fields, key) for key in CHECKLIST}
    items["note"] = _text(fields, "note", max_len=1000, required=False)
    p.checklist = items
    met = all(items[k] for k in CHECKLIST)
    _visit(uow, p.id, "checklist",
           "candidate checklist: all criteria met" if met else
           "candidate checklist: not met: " + ", ".join(CHECKLIST[k] for k in CHECKLIST if not items[k]))
    uow.session.flush()
    uow.audit("set_checklist", "patient", p.id, before, snapshot(p))
    return p


def _mas(raw: Any, key: str) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(key, raw, f"scores by muscle group, e.g. {{'{MUSCLE_GROUPS[0]}': 3}}")
    out: dict[str, float] = {}
    for group, score in raw.items():
        if group not in MUSCLE_GROUPS:
            raise InvalidInput(f"{key}.{group}", group, f"one of {', '.join(MUSCLE_GROUPS)}")
        out[group] = _number({group: score}, group, 0, 4, "(MAS 0-4, 1+ as 1.5)")
    return out


def record_screening(uow: UnitOfWork, patient_id: object, doses: Sequence[Mapping[str, Any]],
                     started_at: datetime | None = None) -> Screening:
    """Record the trial doses given so far, decide responder or not, propose the first dose."""
    require(uow.actor, "screening", uow)
    p = _patient(uow, patient_id)
    if p.stage not in ("candidate", "screening", "screened"):
        raise RefusedOperation(f"patient is {p.stage}: screening is for candidates", code="stage")
    if not isinstance(doses, list | tuple) or not 1 <= len(doses) <= 3:
        raise InvalidInput("doses", doses, "1 to 3 screening doses (50, 75, 100 mcg)")
    trial: list[ScreeningDose] = []
    stored: list[dict[str, Any]] = []
    for i, d in enumerate(doses):
        before = _mas(d.get("mas_before"), f"doses[{i}].mas_before")
        after = _mas(d.get("mas_after"), f"doses[{i}].mas_after")
        if set(before) != set(after):
            raise InvalidInput(f"doses[{i}].mas_after", sorted(after),
                               f"the same muscle groups as before: {', '.join(sorted(before))}")
        groups = sorted(before)
        dose = _number(d, "dose_mcg", 1, 100, "mcg") if "dose_mcg" in d else 0.0
        effect = _number(d, "effect_hours", 0, 48, "h") if d.get("effect_hours") not in (None, "") else 0.0
        trial.append(ScreeningDose(Micrograms(dose), [before[g] for g in groups],
                                   [after[g] for g in groups], effect))
        stored.append({"dose_mcg": dose, "effect_hours": effect, "mas_before": before,
                       "mas_after": after})
    outcome = evaluate_screening(trial)
    s = Screening(patient_id=p.id, started_at=started_at or uow.now, doses=stored,
                  responder=outcome.responder,
                  effective_dose_mcg=outcome.effective_dose.value if outcome.effective_dose else None,
                  first_dose_per_day=outcome.first_dose.dose_per_day.value if outcome.first_dose else None,
                  reason=outcome.reason, by_user=uow.actor.username)
    uow.session.add(s)
    before_p = snapshot(p)
    if outcome.responder:
        p.stage = "screened"
        p.checklist = {**(p.checklist or {}), "screening_response": True}
    elif len(doses) == 3:
        p.stage = "not_candidate"
    else:
        p.stage = "screening"
    uow.session.flush()
    _visit(uow, p.id, "screening", outcome.reason)
    uow.audit("record_screening", "screening", s.id, None, snapshot(s))
    if before_p != snapshot(p):
        uow.audit("stage", "patient", p.id, before_p, snapshot(p))
    return s


# ---- pumps -----------------------------------------------------------------------------------
def active_pump(uow: UnitOfWork, patient: Patient) -> Pump:
    pump = uow.session.scalar(select(Pump).where(Pump.patient_id == patient.id, Pump.active))
    if pump is None:
        raise RefusedOperation(f"patient {patient.id} has no implanted pump", code="no_pump")
    return pump


def implant(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Pump:
    """Implant a pump: fill it, program the first dose, start it and prime the catheter."""
    require(uow.actor, "implant", uow)
    p = _patient(uow, patient_id)
    if p.stage != "screened":
        raise RefusedOperation(
            f"patient is {p.stage}: a pump is implanted only after a positive screening trial",
            code="stage")
    catalog = load_catalog()
    profile_name = _choice(fields, "profile", tuple(catalog.pumps))
    profile = get_pump(profile_name)
    catheter = catalog.catheter(None)
    length = catheter.check_length(_number(fields, "catheter_length_cm", 1, 500, "cm"))
    tip = _level(_text(fields, "tip_level", max_len=10), "tip_level")
    serial = _text(fields, "serial", max_len=40)
    if uow.session.scalar(select(Pump).where(Pump.serial == serial)) is not None:
        raise RefusedOperation(f"serial {serial!r} is already implanted", code="conflict")
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    conc = McgPerMl(_number(fields, "concentration", 1, 5000, "mcg/mL"))
    load_library().check_concentration(conc)
    screening = uow.session.scalar(select(Screening).where(
        Screening.patient_id == p.id, Screening.responder).order_by(Screening.id.desc()))
    default_dose = screening.first_dose_per_day if screening else None
    dose_raw = fields.get("dose_per_day") or default_dose
    dose = McgPerDay(_number({"dose_per_day": dose_raw}, "dose_per_day", 1, 2000, "mcg/day"))
    prescription = Continuous(dose)
    review = review_program(None, None, prescription, conc, profile,
                            origin=Origin(p.origin), context=Context.TITRATION,
                            population=Population(p.population))
    if review.refused:
        raise RefusedOperation(review.reason, code="guardrail_absolute")
    pump = Pump(patient_id=p.id, profile=profile_name, serial=serial, catheter=catheter.name,
                catheter_length_cm=length, tip_level=tip, implanted_at=uow.now, active=True,
                state={})
    uow.session.add(pump)
    seed = zlib.crc32(serial.encode())
    GATEWAY.manufacture(pump, uow.now, seed, catheter.volume(length).value)
    GATEWAY.refill(pump, uow.now, volume, conc)
    GATEWAY.program(pump, uow.now, prescription, conc, start=True)
    prime = priming_bolus(profile, catheter, length)
    # At the bolus flow limit exactly, the pump's whole-second rounding can land a hair above
    # it: give the priming in whole minutes, rounded up, plus one.
    minutes = math.ceil(prime.priming_duration.value * 60) + 1
    reading = GATEWAY.volume_bolus(pump, uow.now, "priming", prime.priming_volume,
                                   Hours(minutes / 60))
    uow.session.flush()
    _sync(uow, pump, reading, rebook=True)
    before_p = snapshot(p)
    p.stage = "implanted"
    uow.session.add(Program(patient_id=p.id, pump_id=pump.id, at=uow.now,
                            prescription=prescription.to_dict(), concentration=conc.value,
                            dose_per_day=dose.value, classification=review.classification.value,
                            reason=review.reason, by_user=uow.actor.username))
    _visit(uow, p.id, "implant",
           f"{profile_name} pump {serial}, catheter {length:g} cm to {tip}; filled {volume} at "
           f"{conc}; {dose} continuous; priming {prime.priming_volume} over "
           f"{prime.priming_duration.value * 60:.0f} min")
    uow.session.flush()
    uow.audit("implant", "pump", pump.id, None, snapshot(pump))
    uow.audit("stage", "patient", p.id, before_p, snapshot(p))
    return pump


def _parse_program(fields: Mapping[str, Any]) -> Prescription:
    if fields.get("prescription") is not None:
        return parse_prescription(fields["prescription"])
    mode = str(fields.get("mode") or "continuous")
    if mode == "continuous":
        return Continuous(McgPerDay(_number(fields, "dose_per_day", 0.1, 5000, "mcg/day")))
    if mode == "flex":
        text = _text(fields, "steps", max_len=2000)
        steps = []
        for i, line in enumerate(x for x in re.split(r"[;\n]", text) if x.strip()):
            parts = line.split()
            if len(parts) != 2:
                raise InvalidInput(f"steps[{i}]", line, "'HH:MM DOSE' e.g. '06:00 150', one per line")
            steps.append({"start": parts[0], "dose": f"{parts[1]} mcg/day"})
        return parse_prescription({"mode": "flex", "steps": steps})
    raise InvalidInput("mode", mode, "continuous or flex")


def program_review(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Review:
    """The side-by-side review of a proposed program (nothing is written)."""
    require(uow.actor, "program", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    proposed = _parse_program(fields)
    context = Context(_choice(fields, "context", tuple(c.value for c in Context))
                      if fields.get("context") else "maintenance")
    reading = GATEWAY.interrogate(pump, uow.now)
    conc = McgPerMl(reading.program_concentration or reading.status["reservoir_concentration"])
    return review_program(reading.prescription, conc, proposed, conc, get_pump(pump.profile),
                          origin=Origin(p.origin), context=context,
                          population=Population(p.population))


def program(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Program:
    """Write a reviewed, confirmed program; beyond recommended bounds only a physician, with a
    reason; beyond absolute bounds nobody."""
    review = program_review(uow, patient_id, fields)
    uow.action = "program"
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    if review.needs_override and uow.actor.role != "physician":
        raise RefusedOperation(
            f"{review.reason}: only a physician may program beyond the recommended bounds",
            code="forbidden")
    override = review.confirm(confirmed=_flag(fields, "confirmed"),
                              override_reason=str(fields.get("override_reason") or "") or None)
    reading = GATEWAY.program(pump, uow.now, review.proposed, review.concentration)
    _sync(uow, pump, reading, rebook=True)
    row = Program(patient_id=p.id, pump_id=pump.id, at=uow.now,
                  prescription=review.proposed.to_dict(), concentration=review.concentration.value,
                  dose_per_day=review.proposed.daily_dose().value,
                  classification=review.classification.value, reason=review.reason,
                  override_reason=override, by_user=uow.actor.username)
    uow.session.add(row)
    uow.session.flush()
    _visit(uow, p.id, "program",
           f"program {review.proposed.mode.value} {review.proposed.daily_dose().value:.4g} mcg/day "
           f"({review.classification.value})" + (f"; override: {override}" if override else ""))
    uow.audit("program", "program", row.id, None, snapshot(row))
    return row


def refill_review(uow: UnitOfWork, patient_id: object,
                  fields: Mapping[str, Any]) -> dict[str, Any]:
    """Step 2 of the refill: the discrepancy, the bridge bolus and the new dates (no write)."""
    require(uow.actor, "refill", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    profile = get_pump(pump.profile)
    reading = GATEWAY.interrogate(pump, uow.now)
    expected = Milliliters(round(reading.status["reservoir_estimate_ml"], 3))
    withdrawn = Milliliters(_number(fields, "withdrawn_ml", 0, profile.capacity.value, "mL"))
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    new_conc = McgPerMl(_number(fields, "concentration", 1, 5000, "mcg/mL"))
    compounded = _flag(fields, "compounded")
    drug = load_library().check_concentration(new_conc, compounded=compounded)
    old_conc = McgPerMl(reading.program_concentration or reading.status["reservoir_concentration"])
    disc: Discrepancy = check_discrepancy(profile, expected, withdrawn)
    bridge: Bridge | None = None
    presc = reading.prescription
    if presc is not None and abs(old_conc.value - new_conc.value) > 1e-9:
        bridge = bridge_bolus(profile, load_catalog().catheter(pump.catheter),
                              pump.catheter_length_cm, old_conc, new_conc,
                              McgPerDay(presc.daily_dose().value))
    proj = None
    if presc is not None:
        proj = project_refill(presc, profile, volume, new_conc, uow.now,
                              low_alarm=Milliliters(reading.status["low_alarm_ml"]))
    return {"pump": pump, "expected": expected, "withdrawn": withdrawn, "volume": volume,
            "old_concentration": old_conc, "concentration": new_conc, "discrepancy": disc,
            "bridge": bridge, "projection": proj, "drug_warning": drug.warning,
            "status": reading.status}


def refill(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Refill:
    """The refill: enter the new volume and concentration in the pump, reprogram at the new
    concentration with a bridge bolus when it changed, and book the next refill-by date."""
    r = refill_review(uow, patient_id, fields)
    uow.action = "refill"
    if not _flag(fields, "confirmed"):
        raise RefusedOperation("the refill was not confirmed on the review step; nothing was "
                               "written", code="unconfirmed")
    disc: Discrepancy = r["discrepancy"]
    note = _text(fields, "note", max_len=2000, required=False)
    if disc.flagged and len(note) < 5:
        raise InvalidInput("note", note, f"the withdrawn volume differs from the expected by "
                           f"{disc.difference_ml:+.2f} mL (more than {disc.threshold}): explain it "
                           "in a note of at least 5 characters")
    p = _patient(uow, patient_id)
    pump: Pump = r["pump"]
    GATEWAY.refill(pump, uow.now, r["volume"], r["concentration"])
    bridge: Bridge | None = r["bridge"]
    reading: PumpReading | None = None
    warnings: list[str] = []
    if bridge is not None:
        current = GATEWAY.interrogate(pump, uow.now).prescription
        assert current is not None
        GATEWAY.program(pump, uow.now, current, r["concentration"])
        try:
            reading = GATEWAY.volume_bolus(pump, uow.now, "bridge", bridge.bridge_volume,
                                           bridge.bridge_duration)
        except RefusedOperation as exc:
            warnings.append(f"bridge bolus not given: {exc.reason}")
    reading = GATEWAY.interrogate(pump, uow.now)
    _sync(uow, pump, reading, rebook=True, refilled=True)
    uow.session.flush()
    for alarm in uow.session.scalars(select(Alarm).where(
            Alarm.pump_id == pump.id, Alarm.acknowledged_at.is_(None),
            Alarm.cleared_at.is_not(None),
            Alarm.kind.in_(("low_reservoir", "empty_reservoir")))):
        alarm.acknowledged_at = uow.now
        alarm.acknowledged_by = uow.actor.username
        alarm.note = "resolved by the refill"
    row = Refill(patient_id=p.id, pump_id=pump.id, at=uow.now, expected_ml=r["expected"].value,
                 withdrawn_ml=r["withdrawn"].value, discrepancy_ml=disc.difference_ml,
                 flagged=disc.flagged, volume_ml=r["volume"].value,
                 old_concentration=r["old_concentration"].value,
                 concentration=r["concentration"].value,
                 bridge=({"volume_ml": bridge.bridge_volume.value,
                          "duration_h": bridge.bridge_duration.value,
                          "dose_mcg": bridge.bridge_dose.value,
                          "unbridged_error_pct": bridge.unbridged_dose_error_pct}
                         if bridge else None),
                 refill_by=pump.refill_by, low_alarm_at=pump.low_alarm_at,
                 note="; ".join([note, *warnings]).strip("; "), by_user=uow.actor.username)
    uow.session.add(row)
    uow.session.flush()
    summary = (f"refill: withdrew {r['withdrawn']} (expected {r['expected']}, "
               f"{disc.difference_ml:+.2f} mL{' FLAGGED' if disc.flagged else ''}); filled "
               f"{r['volume']} at {r['concentration']}")
    if bridge is not None:
        summary += (f"; concentration {r['old_concentration']} -> {r['concentration']} with a "
                    f"bridge bolus of {bridge.bridge_volume.value:.3f} mL over "
                    f"{bridge.bridge_duration.value:.1f} h")
    if pump.refill_by:
        summary += f"; next refill by {pump.refill_by:%Y-%m-%d}"
    _visit(uow, p.id, "refill", summary)
    uow.audit("refill", "refill", row.id, None, snapshot(row))
    return row


def acknowledge_alarm(uow: UnitOfWork, alarm_id: object, note: object) -> Alarm:
    require(uow.actor, "acknowledge", uow)
    alarm: Alarm = uow.get(Alarm, alarm_id, "alarm")
    text = _text({"note": note}, "note", max_len=2000)
    if len(text) < 3:
        raise InvalidInput("note", text, "a note of at least 3 characters saying what was done")
    if alarm.acknowledged_at is not None:
        raise RefusedOperation(f"alarm {alarm.id} was acknowledged at {alarm.acknowledged_at:%Y-%m-%d %H:%M} "
                               f"by {alarm.acknowledged_by}", code="conflict")
    before = snapshot(alarm)
    pump: Pump = uow.get(Pump, alarm.pump_id, "pump")
    if alarm.cleared_at is None and pump.active:
        try:
            _sync(uow, pump, GATEWAY.acknowledge(pump, uow.now, alarm.kind))
        except RefusedOperation:
            pass  # already silenced on the pump (e.g. by the patient's programmer)
    alarm.acknowledged_at = uow.now
    alarm.acknowledged_by = uow.actor.username
    alarm.note = text
    _visit(uow, alarm.patient_id, "alarm", f"{alarm.kind} alarm acknowledged: {text}")
    uow.session.flush()
    uow.audit("acknowledge_alarm", "alarm", alarm.id, before, snapshot(alarm))
    return alarm


def record_mri(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> MriRecord:
    require(uow.actor, "mri", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    minutes = _number(fields, "minutes", 1, 600, "minutes")
    reading = GATEWAY.mri(pump, uow.now, minutes)
    _sync(uow, pump, reading)
    row = MriRecord(patient_id=p.id, pump_id=pump.id, scan_start=uow.now,
                    scan_end=uow.now + timedelta(minutes=minutes), by_user=uow.actor.username)
    uow.session.add(row)
    uow.session.flush()
    _visit(uow, p.id, "mri", f"MRI {minutes:g} min: rotor stopped; "
           f"recovery until {reading.data.get('recovery_until', '?')}; check the pump after the scan")
    uow.audit("record_mri", "mri", row.id, None, snapshot(row))
    return row


def post_mri_check(uow: UnitOfWork, mri_id: object) -> MriRecord:
    require(uow.actor, "mri", uow)
    row: MriRecord = uow.get(MriRecord, mri_id, "mri")
    p = _patient(uow, row.patient_id)
    pump: Pump = uow.get(Pump, row.pump_id, "pump")
    before = snapshot(row)
    reading = GATEWAY.interrogate(pump, uow.now)
    _sync(uow, pump, reading)
    state = reading.status["state"]
    row.checked_at = uow.now
    row.check_result = ("infusing again: the pump resumed after the scan" if state == "running"
                        else f"pump state {state}: not infusing yet; recheck, watch for withdrawal")
    _visit(uow, p.id, "mri_check", row.check_result)
    uow.session.flush()
    uow.audit("post_mri_check", "mri", row.id, before, snapshot(row))
    return row


def plan_replacement(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Visit:
    require(uow.actor, "replacement", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    planned = _date(fields, "planned_date")
    if planned < uow.now.date():
        raise InvalidInput("planned_date", planned.isoformat(), f"today ({uow.now.date()}) or later")
    eos = pump.eri_at + timedelta(days=get_pump(pump.profile).eri_days) if pump.eri_at else None
    if eos is not None and planned >= eos.date():
        raise InvalidInput("planned_date", planned.isoformat(),
                           f"a date before the end of service on {eos:%Y-%m-%d}")
    v = _visit(uow, p.id, "replacement_planned",
               f"pump replacement planned for {planned}"
               + (f" (ERI {pump.eri_at:%Y-%m-%d}, end of service {eos:%Y-%m-%d})" if eos and pump.eri_at else ""))
    uow.session.flush()
    uow.audit("plan_replacement", "visit", v.id, None, snapshot(v))
    return v


def replace_pump(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Pump:
    """Replace the pump (at ERI or for a fault): explant the old one, implant the new one with
    the same program, fill and start it. A retained catheter is already full of drug, so only
    the new pump's internal path is primed; a replaced catheter is primed whole."""
    require(uow.actor, "replacement", uow)
    p = _patient(uow, patient_id)
    old = active_pump(uow, p)
    catalog = load_catalog()
    profile_name = _choice({"profile": fields.get("profile") or old.profile}, "profile",
                           tuple(catalog.pumps))
    profile = get_pump(profile_name)
    serial = _text(fields, "serial", max_len=40)
    if uow.session.scalar(select(Pump).where(Pump.serial == serial)) is not None:
        raise RefusedOperation(f"serial {serial!r} is already implanted", code="conflict")
    catheter = catalog.catheter(old.catheter)
    new_catheter = _flag(fields, "catheter_replaced")
    length = (catheter.check_length(_number(fields, "catheter_length_cm", 1, 500, "cm"))
              if new_catheter else old.catheter_length_cm)
    tip = (_level(_text(fields, "tip_level", max_len=10), "tip_level") if new_catheter
           else old.tip_level)
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    reading = GATEWAY.interrogate(old, uow.now)
    presc = reading.prescription
    old_conc = reading.program_concentration
    conc = McgPerMl(_number({"concentration": fields.get("concentration") or old_conc},
                            "concentration", 1, 5000, "mcg/mL"))
    load_library().check_concentration(conc)
    if presc is None:
        raise RefusedOperation("the old pump has no program to carry over", code="no_program")
    if not new_catheter and abs(conc.value - old_conc) > 1e-9:
        raise InvalidInput("concentration", f"{conc}", f"the retained catheter holds "
                           f"{old_conc:g} mcg/mL: keep it, or change it at the next refill "
                           "with a bridge bolus")
    _sync(uow, old, reading)
    before_old = snapshot(old)
    old.active = False
    old.explanted_at = uow.now
    old.refill_by = old.low_alarm_at = old.empty_at = old.eri_at = None
    for alarm in uow.session.scalars(select(Alarm).where(Alarm.pump_id == old.id,
                                                         Alarm.acknowledged_at.is_(None))):
        alarm.acknowledged_at = uow.now
        alarm.acknowledged_by = uow.actor.username
        alarm.note = "pump explanted"
    uow.session.flush()
    pump = Pump(patient_id=p.id, profile=profile_name, serial=serial, catheter=catheter.name,
                catheter_length_cm=length, tip_level=tip, implanted_at=uow.now, active=True,
                state={})
    uow.session.add(pump)
    GATEWAY.manufacture(pump, uow.now, zlib.crc32(serial.encode()),
                        catheter.volume(length).value)
    GATEWAY.refill(pump, uow.now, volume, conc)
    GATEWAY.program(pump, uow.now, presc, conc, start=True)
    prime_volume = (priming_bolus(profile, catheter, length).priming_volume if new_catheter
                    else Milliliters(profile.internal_volume.value))
    minutes = math.ceil(prime_volume.value / profile.bolus_max_flow_ml_per_hour * 60) + 1
    reading = GATEWAY.volume_bolus(pump, uow.now, "priming", prime_volume, Hours(minutes / 60))
    uow.session.flush()
    _sync(uow, pump, reading, rebook=True, refilled=True)
    _visit(uow, p.id, "replacement",
           f"pump {old.serial} explanted; {profile_name} pump {serial} implanted with the same "
           f"program ({presc.daily_dose().value:.4g} mcg/day at {conc}); "
           + ("new catheter" if new_catheter else "catheter retained")
           + f"; priming {prime_volume.value:.3f} mL over {minutes} min")
    uow.session.flush()
    uow.audit("explant", "pump", old.id, before_old, snapshot(old))
    uow.audit("replace_pump", "pump", pump.id, None, snapshot(pump))
    return pump


# ---- clock and pump synchronisation ----------------------------------------------------------
def _sync(uow: UnitOfWork, pump: Pump, reading: PumpReading, *, rebook: bool = False,
          refilled: bool = False) -> None:
    """Copy the pump's status into the row (for the dashboard) and its alarms into the inbox.

    ``rebook``: the flow or the volume changed (implant, program, refill), so the refill-by date
    is booked again; otherwise it stays as booked, and a missed date shows as overdue."""
    st = reading.status
    profile = get_pump(pump.profile)
    pump.reservoir_ml = st["reservoir_estimate_ml"]
    pump.concentration = reading.program_concentration
    presc = reading.prescription
    running = st["state"] not in ("stopped", "end_of_service")
    pump.dose_per_day = presc.daily_dose().value if presc is not None and running else 0.0
    pump.synced_at = uow.now
    days_left = float(st["battery_days_left"])
    pump.eri_at = (uow.now + timedelta(days=days_left - profile.eri_days)
                   if st["state"] != "end_of_service" else None)
    if presc is not None and reading.program_concentration > 0 and running:
        proj = project_refill(presc, profile,
                              Milliliters(min(max(st["reservoir_estimate_ml"], 0.0),
                                              profile.capacity.value)),
                              McgPerMl(reading.program_concentration), uow.now,
                              low_alarm=Milliliters(st["low_alarm_ml"]))
        last = uow.session.scalar(select(Refill.at).where(Refill.pump_id == pump.id)
                                  .order_by(Refill.at.desc()).limit(1)) if pump.id else None
        start = uow.now if refilled else (last or pump.implanted_at)
        cap = start + timedelta(days=DEFAULT_MAX_INTERVAL_DAYS)
        pump.low_alarm_at = proj.low_alarm_at
        pump.empty_at = proj.empty_at
        if rebook or pump.refill_by is None:
            pump.refill_by = min(proj.refill_by, cap)
    else:
        pump.low_alarm_at = pump.empty_at = None
        if rebook:
            pump.refill_by = None
    if pump.id is None:
        uow.session.flush()
    known = {(a.kind, a.raised_at): a for a in uow.session.scalars(
        select(Alarm).where(Alarm.pump_id == pump.id))}
    for item in reading.alarms:
        raised = datetime.fromisoformat(item["raised_at"]).astimezone(UTC).replace(microsecond=0)
        cleared = (datetime.fromisoformat(item["cleared_at"]).astimezone(UTC).replace(microsecond=0)
                   if item.get("cleared_at") else None)
        row = known.get((item["kind"], raised))
        if row is None:
            row = Alarm(patient_id=pump.patient_id, pump_id=pump.id, kind=item["kind"],
                        critical=CRITICAL.get(item["kind"], True), raised_at=raised,
                        reason=item.get("reason", ""), cleared_at=cleared)
            uow.session.add(row)
            known[(row.kind, raised)] = row
        elif cleared is not None and row.cleared_at is None:
            row.cleared_at = cleared


def advance_clock(uow: UnitOfWork, fields: Mapping[str, Any]) -> datetime:
    """Move the demo clock forward (day, week, or to the next projected alarm), running every
    active pump to the new time."""
    require(uow.actor, "clock", uow)
    step = _choice(fields, "step", ("day", "week", "next_alarm"))
    now = uow.now
    if step == "day":
        target = now + timedelta(days=1)
    elif step == "week":
        target = now + timedelta(days=7)
    else:
        candidates = [t for t in uow.session.scalars(
            select(Pump.low_alarm_at).where(Pump.active, Pump.low_alarm_at > now)) if t]
        candidates += [t for t in uow.session.scalars(
            select(Pump.eri_at).where(Pump.active, Pump.eri_at > now)) if t]
        if not candidates:
            raise RefusedOperation("no alarm is projected on any pump", code="no_alarm")
        target = min(candidates) + timedelta(minutes=1)
    return move_clock(uow, target)


def active_pump_ids(uow: UnitOfWork) -> list[int]:
    return list(uow.session.scalars(select(Pump.id).where(Pump.active).order_by(Pump.id)))


def sync_all_pumps(uow: UnitOfWork, pump_ids: Sequence[int] | None = None) -> int:
    """Run the active pumps (all, or ``pump_ids``) to the clinic's now and bring their alarms
    into the inbox (outside demo mode the server does this every few minutes, a few pumps per
    transaction so that users are never kept waiting). Returns the number of new alarms."""
    if uow.actor.role != "system":
        require(uow.actor, "clock", uow)
    uow.action = "sync_pumps"
    before = uow.session.scalar(select(func.count()).select_from(Alarm)) or 0
    query = select(Pump).where(Pump.active)
    if pump_ids is not None:
        query = query.where(Pump.id.in_(list(pump_ids)))
    for pump in uow.session.scalars(query):
        _sync(uow, pump, GATEWAY.advance_to(pump, uow.now))
    uow.session.flush()
    new = (uow.session.scalar(select(func.count()).select_from(Alarm)) or 0) - before
    if new:
        uow.audit("sync_pumps", "alarm", "", None, {"new_alarms": new})
    return new


def move_clock(uow: UnitOfWork, target: datetime) -> datetime:
    """Set the demo clock to ``target`` (not backwards) and run every active pump to it."""
    now = uow.now
    target = target.replace(microsecond=0)
    if target < now:
        raise InvalidInput("clock", target.isoformat(), f"a time after {now.isoformat()}")
    set_demo_clock(uow.session, target)
    uow.now = target
    for pump in uow.session.scalars(select(Pump).where(Pump.active)):
        _sync(uow, pump, GATEWAY.advance_to(pump, target))
    uow.audit("advance_clock", "clock", "", {"now": now.isoformat()}, {"now": target.isoformat()})
    return target


def _visit(uow: UnitOfWork, patient_id: int, kind: str, summary: str) -> Visit:
    v = Visit(patient_id=patient_id, at=uow.now, kind=kind, summary=summary,
              by_user=uow.actor.username)
    uow.session.add(v)
    return v
