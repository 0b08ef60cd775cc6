"""Read-side use cases: the dashboard, the patient list, a patient's record and timeline, the
alarm inbox and the patient/caregiver view. Reads check permissions like writes do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

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
    """One page of the dashboard and the total count. Each urgency class is one indexed query,
    so a page costs the same with 10 items due or 3,000."""
    require(uow.actor, "view_clinic", uow)
    now = uow.now
    horizon = now + timedelta(days=DUE_WINDOW_DAYS)
    eri_horizon = now + timedelta(days=ERI_WINDOW_DAYS)
    open_alarm = Alarm.acknowledged_at.is_(None)
    active_refill = (Pump.active, Pump.refill_by.is_not(None))
    classes: list[tuple[Any, Any]] = [
        (select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .where(open_alarm, Alarm.critical).order_by(Alarm.raised_at, Alarm.id), _alarm_item),
        # No continuous infusion: a stop of therapy (a stopped pump, or a program that ends
        # continuous delivery, which _sync books as 0 mcg/day): withdrawal risk.
        (select(Pump.synced_at, Patient.id, Patient.name, Pump.serial)
         .join(Patient, Patient.id == Pump.patient_id)
         .where(Pump.active, Pump.dose_per_day <= 0).order_by(Pump.synced_at, Pump.id),
         _stopped_item),
        (_refill_query().where(*active_refill, Pump.refill_by < now), _refill_item(now)),
        (select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .where(open_alarm, Alarm.critical.is_(False)).order_by(Alarm.raised_at, Alarm.id),
         _alarm_item),
        (_refill_query().where(*active_refill, Pump.refill_by >= now,
                               Pump.refill_by <= horizon), _refill_item(now)),
        (select(Pump.eri_at, Patient.id, Patient.name, Pump.serial)
         .join(Patient, Patient.id == Pump.patient_id)
         .where(Pump.active, Pump.eri_at.is_not(None), Pump.eri_at <= eri_horizon)
         .order_by(Pump.eri_at, Pump.id), _eri_item),
    ]
    items: list[DashboardItem] = []
    total = 0
    skip = max(0, offset)
    for query, build in classes:
        count = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        total += count
        want = None if limit is None else limit - len(items)
        if skip >= count:
            skip -= count
            continue
        if want is not None and want <= 0:
            continue
        page = query.offset(skip)
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


def patient_record(uow: UnitOfWork, patient_id: object) -> dict[str, Any]:
    uow.action = uow.action or "view_patient"
    patient: Patient = uow.get(Patient, patient_id, "patient")
    require_patient_access(uow.actor, patient.id)
    s = uow.session
    pid = patient.id
    pump = s.scalar(select(Pump).where(Pump.patient_id == pid, Pump.active))
    programs = list(s.scalars(select(Program).where(Program.patient_id == pid).order_by(Program.at)))
    refills = list(s.scalars(select(Refill).where(Refill.patient_id == pid).order_by(Refill.at)))
    alarms = list(s.scalars(select(Alarm).where(Alarm.patient_id == pid).order_by(Alarm.raised_at)))
    screenings = list(s.scalars(select(Screening).where(Screening.patient_id == pid)
                                .order_by(Screening.id)))
    mris = list(s.scalars(select(MriRecord).where(MriRecord.patient_id == pid)
                          .order_by(MriRecord.scan_start)))
    visits = list(s.scalars(select(Visit).where(Visit.patient_id == pid)
                            .order_by(Visit.at.desc(), Visit.id.desc()).limit(200)))
    timeline: list[TimelineEntry] = [
        TimelineEntry(v.at, v.kind, v.summary, v.by_user) for v in visits]
    timeline += [TimelineEntry(a.raised_at, "alarm raised",
                               f"{'critical' if a.critical else 'non-critical'} "
                               f"{a.kind.replace('_', ' ')} alarm"
                               + (f" ({a.reason})" if a.reason else ""), "pump")
                 for a in alarms]
    timeline.sort(key=lambda e: e.at, reverse=True)
    return {"patient": patient, "pump": pump, "programs": programs, "refills": refills,
            "alarms": alarms, "screenings": screenings, "mris": mris, "visits": visits,
            "timeline": timeline[:300],
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


AUDIT_PAGE = 50  # rows of the audit page, newest first


def audit_page(uow: UnitOfWork, page: int = 1, *, user: str = "", action: str = "",
               patient: int | None = None) -> tuple[list[AuditEntry], int]:
    """One page of the audit trail, newest first, filtered by user, action and patient (the
    patient's own row, or any row whose before or after names the patient); and the count."""
    require(uow.actor, "audit", uow)
    q = select(AuditEntry)
    if user:
        q = q.where(AuditEntry.actor == user[:80])
    if action:
        q = q.where(AuditEntry.action == action[:60])
    if patient is not None:
        q = q.where(or_((AuditEntry.entity == "patient") & (AuditEntry.entity_id == str(patient)),
                        AuditEntry.after["patient_id"].as_integer() == patient,
                        AuditEntry.before["patient_id"].as_integer() == patient))
    total = uow.session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(uow.session.scalars(q.order_by(AuditEntry.id.desc())
                                    .offset((max(1, page) - 1) * AUDIT_PAGE).limit(AUDIT_PAGE)))
    return rows, int(total)


def audit_choices(uow: UnitOfWork) -> tuple[list[str], list[str]]:
    """The users and the actions the audit trail holds (for its filters)."""
    require(uow.actor, "audit", uow)
    users = list(uow.session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))
    actions = list(uow.session.scalars(select(AuditEntry.action).distinct()
                                       .order_by(AuditEntry.action)))
    return users, actions
