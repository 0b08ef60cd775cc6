"""Read-side use cases: the dashboard, the patient list, a patient's record and timeline, the
alarm inbox and the patient/caregiver view. Reads check permissions like writes do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, or_, select

from openitb.clinic import labels
from openitb.clinic.accounts import require, require_patient_access
from openitb.clinic.prediction import predicted_effect
from openitb.clinic.pumps import reading_prescription
from openitb.clinic.uow import UnitOfWork
from openitb.devices import get_pump
from openitb.store.models import (
    Alarm,
    AuditEntry,
    MriRecord,
    Patient,
    Program,
    Pump,
    Refill,
    Screening,
    Visit,
)

DUE_WINDOW_DAYS = 14
# The patient page shows the newest entries of the timeline, and a link to older ones: a
# record with years of visits renders (and escapes) only what is on the screen.
TIMELINE_PAGE = 25
TIMELINE_MAX = 10_000
ERI_WINDOW_DAYS = 180

ALARM_MEANING = {
    "low_reservoir": "The pump's reservoir is getting low (a single tone). Call the clinic to book "
                     "a refill within days; do not wait for it to run empty.",
    "eri": "The pump's battery is near its end (elective replacement indicator, a single tone). "
           "The pump needs replacing within about 90 days; the clinic will plan surgery.",
    "empty_reservoir": "The pump is empty (a two-tone alarm) and no baclofen is reaching the "
                       "spine. Call the clinic now: withdrawal can be dangerous.",
    "end_of_service": "The pump has stopped for good (a two-tone alarm). Call the clinic now.",
    "motor_stall": "The pump's motor has stopped (a two-tone alarm), for instance after an MRI. "
                   "Call the clinic now; watch for withdrawal signs.",
    "memory_error": "The pump found a fault in its memory (a two-tone alarm): it may have "
                    "stopped infusing, or be running on the settings it recovered. Call the "
                    "clinic now.",
}
ALARM_TITLE = labels.ALARM
WITHDRAWAL_SIGNS = ("itching", "fast heart rate", "return of spasticity", "high fever",
                    "confusion or altered mental state", "muscle rigidity")
OVERDOSE_SIGNS = ("drowsiness", "dizziness", "slow or shallow breathing", "seizures",
                  "loss of consciousness")


@dataclass(frozen=True)
class DashboardItem:
    urgency: int  # 0 most urgent
    when: datetime | None
    kind: str  # alarm | therapy_stopped | overdue | refill_due | eri
    patient_id: int
    patient_name: str
    text: str
    alarm_id: int | None = None


def dashboard(uow: UnitOfWork) -> list[DashboardItem]:
    """Overdue and due refills (<= 14 days), open alarms and pumps near ERI, most urgent first."""
    return dashboard_page(uow, 0, None)[0]


def dashboard_page(uow: UnitOfWork, offset: int,
                   limit: int | None) -> tuple[list[DashboardItem], int]:
    """One page of the dashboard and the total count. Each urgency class is a filter on one
    table (an index range, migration 0006); the classes are counted together in one query, and
    only the classes the page reaches are read, so a page costs the same with 10 items due or
    3,000."""
    require(uow.actor, "view_clinic", uow)
    now = uow.now
    horizon = now + timedelta(days=DUE_WINDOW_DAYS)
    eri_horizon = now + timedelta(days=ERI_WINDOW_DAYS)
    open_alarm = Alarm.acknowledged_at.is_(None)
    active_refill = (Pump.active, Pump.refill_by.is_not(None))
    # (the table counted, its filter, the rows of the page in order, how a row becomes an item)
    classes: list[tuple[Any, tuple[Any, ...], Any, Any]] = [
        (Alarm, (open_alarm, Alarm.critical),
         select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .order_by(Alarm.raised_at, Alarm.id), _alarm_item),
        # No continuous infusion: a stop of therapy (a stopped pump, or a program that ends
        # continuous delivery, which _sync books as 0 mcg/day): withdrawal risk.
        (Pump, (Pump.active, Pump.dose_per_day <= 0),
         select(Pump.synced_at, Patient.id, Patient.name, Pump.serial)
         .join(Patient, Patient.id == Pump.patient_id).order_by(Pump.synced_at, Pump.id),
         _stopped_item),
        (Pump, (*active_refill, Pump.refill_by < now), _refill_query(), _refill_item(now)),
        (Alarm, (open_alarm, Alarm.critical.is_(False)),
         select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .order_by(Alarm.raised_at, Alarm.id), _alarm_item),
        (Pump, (*active_refill, Pump.refill_by >= now, Pump.refill_by <= horizon),
         _refill_query(), _refill_item(now)),
        (Pump, (Pump.active, Pump.eri_at.is_not(None), Pump.eri_at <= eri_horizon),
         select(Pump.eri_at, Patient.id, Patient.name, Pump.serial)
         .join(Patient, Patient.id == Pump.patient_id).order_by(Pump.eri_at, Pump.id),
         _eri_item),
    ]
    # Every pump and alarm has its patient (a foreign key), so counting the table alone counts
    # the rows the joined page query returns.
    counts = uow.session.execute(select(*[
        select(func.count()).select_from(table).where(*where).scalar_subquery()
        for table, where, _, _ in classes])).one()
    items: list[DashboardItem] = []
    total = sum(int(n or 0) for n in counts)
    skip = max(0, offset)
    for (_, where, query, build), count in zip(classes, counts, strict=True):
        count = int(count or 0)
        want = None if limit is None else limit - len(items)
        if skip >= count:
            skip -= count
            continue
        if want is not None and want <= 0:
            break
        page = query.where(*where).offset(skip)
        if want is not None:
            page = page.limit(want)
        items += [build(*row) for row in uow.session.execute(page).all()]
        skip = 0
    return items, total


def _refill_query() -> Any:
    return (select(Pump.refill_by, Pump.low_alarm_at, Pump.reservoir_ml, Patient.id, Patient.name)
            .join(Patient, Patient.id == Pump.patient_id).order_by(Pump.refill_by, Pump.id))


def _refill_item(now: datetime) -> Any:
    def build(refill_by: datetime, low_at: datetime | None, reservoir: float, pid: int,
              name: str) -> DashboardItem:
        days = (refill_by - now).total_seconds() / 86400
        alarm = f"; low-reservoir alarm {low_at:%Y-%m-%d}" if low_at else ""
        if days < 0:
            return DashboardItem(1, refill_by, "overdue", pid, name,
                                 f"refill overdue since {refill_by:%Y-%m-%d} ({-days:.0f} days); "
                                 f"{reservoir:.1f} mL left{alarm}")
        return DashboardItem(3, refill_by, "refill_due", pid, name,
                             f"refill due by {refill_by:%Y-%m-%d} (in {days:.0f} days); "
                             f"{reservoir:.1f} mL left{alarm}")
    return build


def _alarm_item(alarm: Alarm, name: str) -> DashboardItem:
    state = "cleared" if alarm.cleared_at else "active"
    return DashboardItem(0 if alarm.critical else 2, alarm.raised_at, "alarm", alarm.patient_id,
                         name, f"{'critical' if alarm.critical else 'non-critical'} "
                         f"{alarm.kind.replace('_', ' ')} alarm since "
                         f"{alarm.raised_at:%Y-%m-%d %H:%M} ({state})", alarm_id=alarm.id)


def _stopped_item(synced: datetime | None, pid: int, name: str, serial: str) -> DashboardItem:
    return DashboardItem(0, synced, "therapy_stopped", pid, name,
                         f"pump {serial}: no continuous infusion (stop of therapy); watch for "
                         "baclofen withdrawal and restart or confirm the plan")


def _eri_item(eri_at: datetime, pid: int, name: str, serial: str) -> DashboardItem:
    return DashboardItem(4, eri_at, "eri", pid, name,
                         f"pump {serial} reaches ERI on {eri_at:%Y-%m-%d}: plan replacement")


def patient_list(uow: UnitOfWork, search: str = "", limit: int = 200) -> list[dict[str, Any]]:
    require(uow.actor, "view_clinic", uow)
    q = (select(Patient, Pump.refill_by, Pump.dose_per_day)
         .outerjoin(Pump, (Pump.patient_id == Patient.id) & Pump.active)
         .order_by(Patient.name).limit(max(1, min(limit, 1000))))
    s = "".join(ch for ch in search.strip()[:100] if ch >= " ")
    if s:  # the text is matched as typed: % and _ are not wildcards
        escaped = s.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        q = q.where(or_(func.lower(Patient.name).like(like, escape="\\"),
                        func.lower(Patient.mrn).like(like, escape="\\")))
    return [{"id": p.id, "mrn": p.mrn, "name": p.name, "stage": p.stage, "origin": p.origin,
             "refill_by": rb, "dose_per_day": dose,
             "withdrawal_risk": p.risk_high_injury or p.risk_communication or p.risk_prior_withdrawal}
            for p, rb, dose in uow.session.execute(q).all()]


_PID: Any = bindparam("pid", type_=Integer)
# A patient's record, statement by statement, built once (building a statement per request was
# a third of the record's cost): each takes the patient id as the parameter "pid".
_RECORD: dict[str, Any] = {
    "pump": select(Pump).where(Pump.patient_id == _PID, Pump.active),
    "programs": select(Program).where(Program.patient_id == _PID).order_by(Program.at),
    "refills": select(Refill).where(Refill.patient_id == _PID).order_by(Refill.at),
    "alarms": select(Alarm).where(Alarm.patient_id == _PID).order_by(Alarm.raised_at),
    "screenings": select(Screening).where(Screening.patient_id == _PID).order_by(Screening.id),
    "mris": select(MriRecord).where(MriRecord.patient_id == _PID).order_by(MriRecord.scan_start),
    "visits": select(Visit).where(Visit.patient_id == _PID)
    .order_by(Visit.at.desc(), Visit.id.desc()).limit(bindparam("n", type_=Integer)),
}


def patient_record(uow: UnitOfWork, patient_id: object, *,
                   timeline: int | None = None) -> dict[str, Any]:
    """A patient's record. ``timeline``: the newest that many timeline entries (visits and
    alarms), with ``timeline_more`` saying whether older ones exist; without it, the newest
    300 of the latest 200 visits and every alarm (what the exports and the API carry)."""
    uow.action = uow.action or "view_patient"
    patient: Patient = uow.get(Patient, patient_id, "patient")
    require_patient_access(uow.actor, patient.id)
    s = uow.session
    pid = patient.id
    at = {"pid": pid}
    pump = s.scalar(_RECORD["pump"], at)
    programs = list(s.scalars(_RECORD["programs"], at))
    refills = list(s.scalars(_RECORD["refills"], at))
    alarms = list(s.scalars(_RECORD["alarms"], at))
    screenings = list(s.scalars(_RECORD["screenings"], at))
    mris = list(s.scalars(_RECORD["mris"], at))
    shown = 300 if timeline is None else max(1, min(int(timeline), TIMELINE_MAX))
    visits = list(s.scalars(_RECORD["visits"],
                            {**at, "n": 200 if timeline is None else shown + 1}))
    entries: list[TimelineEntry] = [
        TimelineEntry(v.at, v.kind, v.summary, v.by_user) for v in visits]
    entries += [TimelineEntry(a.raised_at, "alarm raised",
                               f"{'critical' if a.critical else 'non-critical'} "
                               f"{a.kind.replace('_', ' ')} alarm"
                               + (f" ({a.reason})" if a.reason else ""), "pump")
                 for a in alarms]
    entries.sort(key=lambda e: e.at, reverse=True)
    return {"patient": patient, "pump": pump, "programs": programs, "refills": refills,
            "alarms": alarms, "screenings": screenings, "mris": mris, "visits": visits,
            "timeline": entries[:shown], "timeline_more": len(entries) > shown,
            "profile": get_pump(pump.profile) if pump else None,
            "risk": withdrawal_risk(patient), "now": uow.now,
            "predicted_effect": program_effect(patient, pump)}


def program_effect(patient: Patient, pump: Pump | None) -> dict[str, Any] | None:
    """The patient model's steady-state effect of the pump's current program for a typical
    patient of this origin (see clinic/prediction.py); None without a programmed pump."""
    if pump is None:
        return None
    rx = reading_prescription(pump.state or {})
    if rx is None:
        return None
    dose = rx.daily_dose().value
    out = predicted_effect(patient.origin, patient.population, dose).to_dict()
    out["infusing"] = bool(pump.dose_per_day and pump.dose_per_day > 0)
    return out


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    summary: str
    by_user: str


def withdrawal_risk(p: Patient) -> list[str]:
    out = []
    if p.risk_high_injury:
        out.append(f"spinal cord injury at T6 or above ({p.injury_level or 'level not recorded'})")
    if p.risk_communication:
        out.append("communication difficulty")
    if p.risk_prior_withdrawal:
        out.append("earlier withdrawal")
    return out


def alarm_inbox(uow: UnitOfWork, include_acknowledged: bool = False) -> list[tuple[Alarm, str]]:
    require(uow.actor, "view_clinic", uow)
    q = (select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .order_by(Alarm.critical.desc(), Alarm.raised_at.desc()).limit(500))
    if not include_acknowledged:
        q = q.where(Alarm.acknowledged_at.is_(None))
    return [(a, n) for a, n in uow.session.execute(q).all()]


def alarm_item(uow: UnitOfWork, alarm_id: object) -> tuple[Alarm, str]:
    require(uow.actor, "view_clinic", uow)
    alarm: Alarm = uow.get(Alarm, alarm_id, "alarm")
    patient: Patient = uow.get(Patient, alarm.patient_id, "patient")
    return alarm, patient.name


def audit_trail(uow: UnitOfWork, limit: int = 200) -> list[AuditEntry]:
    require(uow.actor, "audit", uow)
    return list(uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())
                                    .limit(max(1, min(limit, 5000)))))


def refill_appointments(uow: UnitOfWork) -> list[tuple[int, str, str, datetime, datetime | None]]:
    """Active pumps with a refill-by date: (pump id, patient, serial, refill-by, low alarm)."""
    require(uow.actor, "view_clinic", uow)
    rows = uow.session.execute(
        select(Pump.id, Patient.name, Pump.serial, Pump.refill_by, Pump.low_alarm_at)
        .join(Patient, Patient.id == Pump.patient_id)
        .where(Pump.active, Pump.refill_by.is_not(None)).order_by(Pump.refill_by)).all()
    return [(a, b, c, d, e) for a, b, c, d, e in rows]
