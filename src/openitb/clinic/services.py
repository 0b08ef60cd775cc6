"""Use cases of the ITB clinic. Each runs inside one :class:`UnitOfWork` (one transaction),
checks the actor's permission first, validates every outside value (naming the field, what was
given and what is allowed), and writes an audit entry (before and after) for each change."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from openitb.clinic.accounts import require, require_patient_access
from openitb.clinic.alarm_forecast import STOP_AFTER, fleet_forecasts, next_alarm
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.driving import Planned, apply_on, patient_facts, review_on, step_choices_on
from openitb.clinic.pumps import PumpGateway, PumpReading
from openitb.clinic.review_binding import ChangedSinceReview, state_token
from openitb.clinic.uow import Conflict, UnitOfWork, snapshot
from openitb.devices import get_pump, load_catalog
from openitb.drugs import Context, Origin, load_library
from openitb.errors import InvalidInput, InvalidInputs, RefusedOperation
from openitb.pump.alarms import CRITICAL
from openitb.pump.status import PumpStatus
from openitb.safety import StepChoices
from openitb.safety import proposals as sp
from openitb.safety.rules import stop_rule
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
from openitb.therapy.refill import DEFAULT_MAX_INTERVAL_DAYS, project_refill
from openitb.therapy.screening import ScreeningDose, evaluate_screening, parse_mas
from openitb.units import McgPerDay, McgPerMl, Micrograms, Milliliters

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
ACK_NOTE_MIN = 3  # an acknowledgement says what was done, in a few words at least
_LEVEL = re.compile(r"^(C[1-8]|T([1-9]|1[0-2])|L[1-5]|S[1-5])$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164: a country code, at most 15 digits
_PHONE_SEPARATORS = str.maketrans("", "", " -.()/")


# ---- validation helpers ----------------------------------------------------------------------
def _text(fields: Mapping[str, Any], key: str, *, max_len: int = 200, required: bool = True) -> str:
    raw = fields.get(key)
    value = "" if raw is None else str(raw).strip()
    if required and not value:
        raise InvalidInput(key, raw, f"text of up to {max_len} characters")
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


def parse_phone(raw: object, key: str = "phone") -> str:
    """A phone number as typed ("+44 20 7946 0958", "+1 (555) 010-0199") to E.164
    ("+442079460958"); empty stays empty. Spaces, dashes, dots, slashes and brackets are
    allowed between digits; a number without its + and country code is refused."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return ""
    compact = text.translate(_PHONE_SEPARATORS)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if len(text) > 40 or not _PHONE.match(compact):
        raise InvalidInput(key, text[:40], "an international number: + then the country code and "
                           "number, 8 to 15 digits in all, e.g. +44 20 7946 0958 (spaces and "
                           "dashes allowed), or empty")
    return compact


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
        "phone": parse_phone(fields.get("phone")),
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
                                         "risk_prior_withdrawal", "emergency_contact",
                                         "phone")}
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


def _mas(raw: Any, key: str, errors: list[InvalidInput]) -> dict[str, float]:
    """Scores by muscle group; each bad one is added to ``errors`` (named by its group)."""
    if not isinstance(raw, Mapping) or not raw:
        errors.append(InvalidInput(key, raw if raw else "", "at least one muscle group "
                                   f"graded before and after, e.g. {{'{MUSCLE_GROUPS[0]}': 3}}"))
        return {}
    out: dict[str, float] = {}
    for group, score in raw.items():
        if group not in MUSCLE_GROUPS:
            errors.append(InvalidInput(f"{key}.{group}", group,
                                       f"one of {', '.join(MUSCLE_GROUPS)}"))
            continue
        try:
            out[group] = parse_mas(score, f"{key}.{group}")
        except InvalidInput as exc:
            errors.append(exc)
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
    errors: list[InvalidInput] = []  # every bad entry of the form at once, each by its field
    for i, d in enumerate(doses):
        before = _mas(d.get("mas_before"), f"doses[{i}].mas_before", errors)
        after = _mas(d.get("mas_after"), f"doses[{i}].mas_after", errors)
        for g in sorted(set(before) - set(after)):
            errors.append(InvalidInput(f"doses[{i}].mas_after.{g}", "",
                                       "a grade after the dose, as it was scored before"))
        for g in sorted(set(after) - set(before)):
            errors.append(InvalidInput(f"doses[{i}].mas_before.{g}", "",
                                       "a grade before the dose, as it was scored after"))
        groups = sorted(set(before) & set(after))
        try:
            dose = _number(d, "dose_mcg", 1, 100, "mcg") if "dose_mcg" in d else 0.0
            effect = (_number(d, "effect_hours", 0, 48, "h")
                      if d.get("effect_hours") not in (None, "") else 0.0)
        except InvalidInput as exc:
            errors.append(InvalidInput(f"doses[{i}].{exc.field}", exc.given, exc.allowed))
            continue
        trial.append(ScreeningDose(Micrograms(dose), [before[g] for g in groups],
                                   [after[g] for g in groups], effect))
        stored.append({"dose_mcg": dose, "effect_hours": effect, "mas_before": before,
                       "mas_after": after})
    if errors:
        raise InvalidInputs(errors)
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
# Every change to a pump is reviewed by the safety kernel and written by the programmer, over one
# session (clinic/driving.py); the clinic only validates its forms and keeps its records.
def active_pump(uow: UnitOfWork, patient: Patient) -> Pump:
    pump = uow.session.scalar(select(Pump).where(Pump.patient_id == patient.id, Pump.active))
    if pump is None:
        raise RefusedOperation(f"patient {patient.id} has no implanted pump", code="no_pump")
    return pump


def _gateway(uow: UnitOfWork) -> PumpGateway:
    gateway: PumpGateway | None = getattr(uow, "gateway", None)
    if gateway is None:
        raise RuntimeError("this unit of work carries no pump gateway: open it with Clinic.uow")
    return gateway


def _token(fields: Mapping[str, Any]) -> str:
    """The review token the confirm sends (checked against the review recomputed now)."""
    raw = fields.get("review_token")
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise ChangedSinceReview("no review token was sent: review first")
    return text[:100]


def _confirm_args(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"confirmed": _flag(fields, "confirmed"),
            "override_reason": _text(fields, "override_reason", max_len=2000,
                                     required=False) or None}


def _drive(uow: UnitOfWork, pump: Pump, kind: str, proposal: Any, p: Patient,
           fields: Mapping[str, Any], token: str | None
           ) -> tuple[Planned, Any, PumpReading | None]:
    """Review (``token`` None: one read, nothing stored) or apply what the review with this
    token showed, in ONE session to the pump; the snapshot is stored only after the write."""
    facts = patient_facts(p, uow.now.date())
    with _gateway(uow).session(pump, uow.now) as s:
        if token is None:
            return review_on(s, kind, proposal, uow.actor, facts), None, None
        done, outcome = apply_on(s, kind, proposal, uow.actor, facts, token,
                                 **_confirm_args(fields))
        s.commit()
        return done, outcome, s.reading()


def _product(conc: McgPerMl, compounded: bool = False) -> str:
    """The library product that comes in this concentration (a compounded one: the drug)."""
    lib = load_library()
    names = lib.check_concentration(conc, compounded=compounded).products
    return names[0] if names else lib.products[0].name


def _new_pump_values(uow: UnitOfWork, p: Patient, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The validated implant form (nothing written)."""
    catalog = load_catalog()
    profile_name = _choice(fields, "profile", tuple(catalog.pumps))
    profile = get_pump(profile_name)
    catheter = catalog.catheter(None)
    length = catheter.check_length(_number(fields, "catheter_length_cm", 1, 500, "cm"))
    tip = _level(_text(fields, "tip_level", max_len=10), "tip_level")
    serial = _serial(uow, fields)
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    conc = McgPerMl(_number(fields, "concentration", 1, 5000, "mcg/mL"))
    screening = uow.session.scalar(select(Screening).where(
        Screening.patient_id == p.id, Screening.responder).order_by(Screening.id.desc()))
    default_dose = screening.first_dose_per_day if screening else None
    dose_raw = fields.get("dose_per_day") or default_dose
    dose = McgPerDay(_number({"dose_per_day": dose_raw}, "dose_per_day", 1, 2000, "mcg/day"))
    return {"profile_name": profile_name, "catheter": catheter, "length": length, "tip": tip,
            "serial": serial, "volume": volume, "conc": conc, "prescription": Continuous(dose)}


def _serial(uow: UnitOfWork, fields: Mapping[str, Any]) -> str:
    serial = _text(fields, "serial", max_len=40)
    if uow.session.scalar(select(Pump).where(Pump.serial == serial)) is not None:
        raise RefusedOperation(f"serial {serial!r} is already implanted", code="conflict")
    return serial


def _new_pump(uow: UnitOfWork, p: Patient, v: Mapping[str, Any]) -> Pump:
    """A pump row and its factory-new virtual pump (not yet in the session)."""
    pump = Pump(patient_id=p.id, profile=v["profile_name"], serial=v["serial"],
                catheter=v["catheter"].name, catheter_length_cm=v["length"], tip_level=v["tip"],
                implanted_at=uow.now, active=True, state={})
    _gateway(uow).manufacture(pump, uow.now, zlib.crc32(v["serial"].encode()),
                              v["catheter"].volume(v["length"]).value)
    return pump


def _implant_stage(p: Patient) -> None:
    if p.stage != "screened":
        raise RefusedOperation(
            f"patient is {p.stage}: a pump is implanted only after a positive screening trial",
            code="stage")


def _implant(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any],
             token: str | None) -> tuple[Planned, Any, PumpReading | None, Patient, Pump,
                                         dict[str, Any]]:
    require(uow.actor, "implant", uow)
    p = _patient(uow, patient_id)
    _implant_stage(p)
    v = _new_pump_values(uow, p, fields)
    pump = _new_pump(uow, p, v)
    proposal = sp.Implant(v["prescription"], _product(v["conc"]), v["conc"], v["volume"])
    return (*_drive(uow, pump, "implant", proposal, p, fields, token), p, pump, v)


def implant_review(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Planned:
    """The implant's review: what would be written to the new pump (nothing is stored)."""
    return _implant(uow, patient_id, fields, None)[0]


def implant(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Pump:
    """Implant a pump as reviewed: fill it, program the first dose, start it and prime."""
    uow.action = "implant"
    done, outcome, reading, p, pump, v = _implant(uow, patient_id, fields, _token(fields))
    assert reading is not None
    uow.session.add(pump)
    uow.session.flush()
    _sync(uow, pump, reading, rebook=True)
    before_p = snapshot(p)
    p.stage = "implanted"
    presc: Prescription = v["prescription"]
    uow.session.add(Program(patient_id=p.id, pump_id=pump.id, at=uow.now,
                            prescription=presc.to_dict(), concentration=v["conc"].value,
                            dose_per_day=presc.daily_dose().value,
                            classification=done.classification.value, reason=done.reason,
                            override_reason=outcome.override_reason,
                            by_user=uow.actor.username))
    prime = done.review.priming
    _visit(uow, p.id, "implant",
           f"{v['profile_name']} pump {v['serial']}, catheter {v['length']:g} cm to {v['tip']}; "
           f"filled {v['volume']} at {v['conc']}; {presc.daily_dose()} continuous"
           + (f"; priming {prime.volume_ml:.4g} mL over {prime.duration_h * 60:.1f} min"
              if prime else ""))
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


def _program(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any],
             token: str | None) -> tuple[Planned, Any, PumpReading | None, Patient, Pump]:
    require(uow.actor, "program", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    context = Context(_choice(fields, "context", tuple(c.value for c in Context))
                      if fields.get("context") else "maintenance")  # the API's documented default
    proposal = sp.ProgramChange(_parse_program(fields), context)
    return (*_drive(uow, pump, "program", proposal, p, fields, token), p, pump)


def program_steps(uow: UnitOfWork, patient_id: object) -> dict[Context, StepChoices]:
    """The steps of daily dose the kernel's rules allow now, per context, from one read of the
    pump (nothing written, nothing stored)."""
    require(uow.actor, "program", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    with _gateway(uow).session(pump, uow.now) as s:
        return step_choices_on(s, uow.actor, patient_facts(p, uow.now.date()), tuple(Context))


def program_review(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Planned:
    """The kernel's review of a proposed program over the pump's last 24 hours, with its token
    (nothing is written and nothing stored: the pump was only read)."""
    return _program(uow, patient_id, fields, None)[0]


def program(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Program:
    """Write a reviewed, confirmed program: the review is recomputed against the pump now and
    must have the confirmed token; then the kernel's gate (role, confirmation, reason)."""
    uow.action = "program"
    done, outcome, reading, p, pump = _program(uow, patient_id, fields, _token(fields))
    assert reading is not None
    _sync(uow, pump, reading, rebook=True)
    presc = parse_prescription(dict(done.commands)["program"]["prescription"])
    conc = float(str(dict(done.commands)["program"]["concentration"]).split()[0])
    override = outcome.override_reason
    stop = done.review.stop_of_therapy
    row = Program(patient_id=p.id, pump_id=pump.id, at=uow.now,
                  prescription=presc.to_dict(), concentration=conc,
                  dose_per_day=presc.daily_dose().value,
                  classification=done.classification.value, reason=done.reason,
                  override_reason=override, by_user=uow.actor.username)
    uow.session.add(row)
    uow.session.flush()
    _visit(uow, p.id, "therapy_stop" if stop else "program",
           ("STOP OF THERAPY: " if stop else "")
           + f"program {presc.mode.value} {presc.daily_dose().value:.4g} mcg/day "
           f"({done.classification.value})" + (f"; override: {override}" if override else "")
           + ("; " + "; ".join(done.warnings) if stop and done.warnings else ""))
    uow.audit("program", "program", row.id, None, snapshot(row))
    return row


def _refill(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any],
            token: str | None) -> tuple[Planned, Any, PumpReading | None, Patient, Pump]:
    require(uow.actor, "refill", uow)
    p = _patient(uow, patient_id)
    pump = active_pump(uow, p)
    profile = get_pump(pump.profile)
    withdrawn = Milliliters(_number(fields, "withdrawn_ml", 0, profile.capacity.value, "mL"))
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    conc = McgPerMl(_number(fields, "concentration", 1, 5000, "mcg/mL"))
    compounded = _flag(fields, "compounded")
    proposal = sp.Refill(withdrawn, _product(conc, compounded), conc, volume,
                         compounded=compounded)
    return (*_drive(uow, pump, "refill", proposal, p, fields, token), p, pump)


def refill_review(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Planned:
    """Step 2 of the refill: the kernel's review (discrepancy, capacity, concentration, the
    bridge plan the pump can give and what it leaves), the new dates, the token."""
    return _refill(uow, patient_id, fields, None)[0]


def refill(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Refill:
    """The refill as reviewed; the record stores what was given: the bridge bolus actually
    written, the unbridged rest and the override that allowed it."""
    uow.action = "refill"
    done, outcome, reading, p, pump = _refill(uow, patient_id, fields, _token(fields))
    assert reading is not None
    _sync(uow, pump, reading, rebook=True, refilled=True)
    uow.session.flush()
    for alarm in uow.session.scalars(select(Alarm).where(
            Alarm.pump_id == pump.id, Alarm.acknowledged_at.is_(None),
            Alarm.cleared_at.is_not(None),
            Alarm.kind.in_(("low_reservoir", "empty_reservoir")))):
        alarm.acknowledged_at = uow.now
        alarm.acknowledged_by = uow.actor.username
        alarm.note = "resolved by the refill"
    disc = done.review.fact("discrepancy") or {}
    plan_b = done.review.bridge
    override = outcome.override_reason
    cmd_refill = dict(done.commands)["refill"]
    new_conc = float(str(cmd_refill["concentration"]).split()[0])
    old_conc = float(done.status.get("reservoir_concentration_mcg_per_ml") or new_conc)
    bridge = None
    if plan_b is not None:
        given = dict(done.commands).get("bridge_bolus")
        bridge = {"given": given is not None,
                  "volume_ml": plan_b.volume_ml if given else 0.0,
                  "duration_h": plan_b.duration_h if given else 0.0,
                  "dose_mcg": plan_b.dose_mcg if given else 0.0,
                  "path_volume_ml": plan_b.path_volume_ml,
                  "unbridged_ml": plan_b.unbridged_ml if given else plan_b.path_volume_ml,
                  "unbridged_dose_error_pct": plan_b.unbridged_dose_error_pct,
                  "override_reason": override}
    note = _text(fields, "note", max_len=2000, required=False)
    row = Refill(patient_id=p.id, pump_id=pump.id, at=uow.now,
                 expected_ml=float(disc.get("expected_ml", 0.0)),
                 withdrawn_ml=float(disc.get("withdrawn_ml", fields["withdrawn_ml"])),
                 discrepancy_ml=float(disc.get("difference_ml", 0.0)),
                 flagged=bool(disc.get("flagged", False)),
                 volume_ml=float(fields["volume_ml"]), old_concentration=old_conc,
                 concentration=new_conc, bridge=bridge, refill_by=pump.refill_by,
                 low_alarm_at=pump.low_alarm_at,
                 note="; ".join(x for x in (note, f"override: {override}" if override else "")
                                if x), by_user=uow.actor.username)
    uow.session.add(row)
    uow.session.flush()
    summary = (f"refill: withdrew {row.withdrawn_ml:g} mL (expected {row.expected_ml:.3g} mL, "
               f"{row.discrepancy_ml:+.2f} mL{' FLAGGED' if row.flagged else ''}); filled "
               f"{row.volume_ml:g} mL at {new_conc:g} mcg/mL")
    if bridge is not None:
        summary += (f"; concentration {old_conc:g} -> {new_conc:g} mcg/mL with a bridge bolus of "
                    f"{bridge['volume_ml']:.3f} mL over {bridge['duration_h']:.1f} h"
                    if bridge["given"] else
                    f"; concentration {old_conc:g} -> {new_conc:g} mcg/mL without a bridge bolus")
        if bridge["unbridged_ml"]:
            summary += f" ({bridge['unbridged_ml']:.3f} mL of the path not bridged)"
    if override:
        summary += f"; override: {override}"
    if pump.refill_by:
        summary += f"; next refill by {pump.refill_by:%Y-%m-%d}"
    _visit(uow, p.id, "refill", summary)
    uow.audit("refill", "refill", row.id, None, snapshot(row))
    return row


def acknowledge_alarm(uow: UnitOfWork, alarm_id: object, note: object) -> Alarm:
    require(uow.actor, "acknowledge", uow)
    alarm: Alarm = uow.get(Alarm, alarm_id, "alarm")
    text = _text({"note": note}, "note", max_len=2000, required=False)
    if len(text) < ACK_NOTE_MIN:
        raise InvalidInput("note", text,
                           f"at least {ACK_NOTE_MIN} characters, saying what was done")
    if alarm.acknowledged_at is not None:
        raise RefusedOperation(f"alarm {alarm.id} was acknowledged at {alarm.acknowledged_at:%Y-%m-%d %H:%M} "
                               f"by {alarm.acknowledged_by}", code="conflict")
    before = snapshot(alarm)
    pump: Pump = uow.get(Pump, alarm.pump_id, "pump")
    if alarm.cleared_at is None and pump.active:
        try:
            with _gateway(uow).session(pump, uow.now) as s:
                s.send("acknowledge_alarm", kind=alarm.kind)
                s.commit()
                reading = s.reading(s.read())
            _sync(uow, pump, reading)
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
    reading = _gateway(uow).mri(pump, uow.now, minutes)
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
    with _gateway(uow).session(pump, uow.now) as s:
        status = s.read()  # an interrogation: it resumes a pump waiting after the scan
        s.commit()
        reading = s.reading(status)
    _sync(uow, pump, reading)
    state = reading.pump_status
    row.checked_at = uow.now
    row.check_result = ("infusing again: the pump resumed after the scan"
                        if state is PumpStatus.RUNNING else
                        f"pump state {state.value}: not infusing yet; recheck, watch for "
                        "withdrawal")
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


def _replacement(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any],
                 token: str | None) -> tuple[Planned, Any, PumpReading | None, dict[str, Any]]:
    """Read the old pump, plan the new one with the same program; review or write it. The
    token binds both: the kernel's token of the new pump's writes and the old pump's state."""
    require(uow.actor, "replacement", uow)
    p = _patient(uow, patient_id)
    old = active_pump(uow, p)
    catalog = load_catalog()
    profile_name = _choice({"profile": fields.get("profile") or old.profile}, "profile",
                           tuple(catalog.pumps))
    profile = get_pump(profile_name)
    serial = _serial(uow, fields)
    catheter = catalog.catheter(old.catheter)
    new_catheter = _flag(fields, "catheter_replaced")
    length = (catheter.check_length(_number(fields, "catheter_length_cm", 1, 500, "cm"))
              if new_catheter else old.catheter_length_cm)
    tip = (_level(_text(fields, "tip_level", max_len=10), "tip_level") if new_catheter
           else old.tip_level)
    volume = Milliliters(_number(fields, "volume_ml", 0.5, profile.capacity.value, "mL"))
    with _gateway(uow).session(old, uow.now) as s:
        old_status = s.read()
        if token is not None:
            s.commit()
        old_reading = s.reading(old_status)
    presc = old_reading.prescription
    old_conc = old_reading.program_concentration
    if presc is None:
        raise RefusedOperation("the old pump has no program to carry over", code="no_program")
    conc = McgPerMl(_number({"concentration": fields.get("concentration") or old_conc},
                            "concentration", 1, 5000, "mcg/mL"))
    if not new_catheter and abs(conc.value - old_conc) > 1e-9:
        raise InvalidInput("concentration", f"{conc}", f"the retained catheter holds "
                           f"{old_conc:g} mcg/mL: keep it, or change it at the next refill "
                           "with a bridge bolus")
    v = {"profile_name": profile_name, "catheter": catheter, "length": length, "tip": tip,
         "serial": serial, "volume": volume, "conc": conc, "prescription": presc,
         "new_catheter": new_catheter, "old": old, "old_reading": old_reading}
    pump = _new_pump(uow, p, v)
    v["pump"] = pump
    old_part = state_token(old_status)[:16]
    kernel_token = None
    if token is not None:
        kernel_token, _, given_old = token.partition(".")
        if given_old != old_part:
            raise ChangedSinceReview("the old pump changed")
    proposal = sp.Replacement(presc, _product(conc), conc, volume, new_catheter)
    done, outcome, reading = _drive(uow, pump, "replacement", proposal, p, fields, kernel_token)
    done = Planned(done.kind, done.review, done.status, f"{done.token}.{old_part}", done.extra)
    return done, outcome, reading, v


def replacement_review(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Planned:
    """The replacement's review: the old pump read, the new one's writes (nothing stored)."""
    return _replacement(uow, patient_id, fields, None)[0]


def replace_pump(uow: UnitOfWork, patient_id: object, fields: Mapping[str, Any]) -> Pump:
    """Replace the pump as reviewed (at ERI or for a fault): explant the old one, implant the
    new one with the same program, fill, start and prime it."""
    uow.action = "replace_pump"
    done, outcome, reading, v = _replacement(uow, patient_id, fields, _token(fields))
    assert reading is not None
    p = _patient(uow, patient_id)
    old: Pump = v["old"]
    pump: Pump = v["pump"]
    _sync(uow, old, v["old_reading"])
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
    uow.session.add(pump)
    uow.session.flush()
    _sync(uow, pump, reading, rebook=True, refilled=True)
    presc: Prescription = v["prescription"]
    prime = done.review.priming
    _visit(uow, p.id, "replacement",
           f"pump {old.serial} explanted; {v['profile_name']} pump {v['serial']} implanted with "
           f"the same program ({presc.daily_dose().value:.4g} mcg/day at {v['conc']}); "
           + ("new catheter" if v["new_catheter"] else "catheter retained")
           + (f"; priming {prime.volume_ml:.4g} mL over {prime.duration_h * 60:.1f} min"
              if prime else ""))
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
    status = reading.pump_status
    running = status not in (PumpStatus.STOPPED, PumpStatus.END_OF_SERVICE)
    # A program that ends continuous delivery (the kernel's rule) infuses nothing to plan on.
    continuous = presc is not None and running and stop_rule(presc) is None
    pump.dose_per_day = presc.daily_dose().value if continuous and presc is not None else 0.0
    pump.synced_at = uow.now
    days_left = float(st["battery_days_left"])
    pump.eri_at = (uow.now + timedelta(days=days_left - profile.eri_days)
                   if status is not PumpStatus.END_OF_SERVICE else None)
    if presc is not None and reading.program_concentration > 0 and continuous:
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
        # Every alarm every active pump will raise on its own (low, empty, ERI, end of
        # service): the step stops just after the earliest, whatever its pump or kind.
        rows = uow.session.execute(select(Pump.id, Pump.profile, Pump.low_alarm_at,
                                          Pump.empty_at, Pump.eri_at).where(Pump.active)).all()
        first = next_alarm(fleet_forecasts(rows), now)
        if first is None:
            raise RefusedOperation("no alarm is projected on any pump", code="no_alarm")
        target = first.at + STOP_AFTER
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
        _sync(uow, pump, _gateway(uow).advance_to(pump, uow.now))
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
        _sync(uow, pump, _gateway(uow).advance_to(pump, target))
    uow.audit("advance_clock", "clock", "", {"now": now.isoformat()}, {"now": target.isoformat()})
    return target


def _visit(uow: UnitOfWork, patient_id: int, kind: str, summary: str) -> Visit:
    v = Visit(patient_id=patient_id, at=uow.now, kind=kind, summary=summary,
              by_user=uow.actor.username)
    uow.session.add(v)
    return v
