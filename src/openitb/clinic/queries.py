"""Read-side use cases: the dashboard, the patient list, a patient's record and timeline, the
alarm inbox and the patient/caregiver view. Reads check permissions like writes do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from openitb.clinic.accounts import require, require_patient_access
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
    "memory_error": "The pump restarted and stopped infusing (a two-tone alarm). Call the clinic "
                    "now.",
}
ALARM_TITLE = {
    "low_reservoir": "Low reservoir", "eri": "Battery replacement due (ERI)",
    "empty_reservoir": "Empty reservoir", "end_of_service": "End of service",
    "motor_stall": "Motor stopped", "memory_error": "Pump restarted (memory error)",
}
WITHDRAWAL_SIGNS = ("itching", "fast heart rate", "return of spasticity", "high fever",
                    "confusion or altered mental state", "muscle rigidity")
OVERDOSE_SIGNS = ("drowsiness", "dizziness", "slow or shallow breathing", "seizures",
                  "loss of consciousness")


@dataclass(frozen=True)
class DashboardItem:
    urgency: int  # 0 most urgent
    when: datetime | None
    kind: str  # overdue | refill_due | alarm | eri
    patient_id: int
    patient_name: str
    text: str
    alarm_id: int | None = None


def dashboard(uow: UnitOfWork) -> list[DashboardItem]:
    """Overdue and due refills (<= 14 days), open alarms and pumps near ERI, most urgent first."""
    require(uow.actor, "view_clinic", uow)
    now = uow.now
    items: list[DashboardItem] = []
    horizon = now + timedelta(days=DUE_WINDOW_DAYS)
    rows = uow.session.execute(
        select(Pump.refill_by, Pump.low_alarm_at, Pump.reservoir_ml, Patient.id, Patient.name)
        .join(Patient, Patient.id == Pump.patient_id)
        .where(Pump.active, Pump.refill_by.is_not(None), Pump.refill_by <= horizon)
        .order_by(Pump.refill_by)).all()
    for refill_by, low_at, reservoir, pid, name in rows:
        days = (refill_by - now).total_seconds() / 86400
        alarm = f"; low-reservoir alarm {low_at:%Y-%m-%d}" if low_at else ""
        if days < 0:
            items.append(DashboardItem(1, refill_by, "overdue", pid, name,
                                       f"refill overdue since {refill_by:%Y-%m-%d} "
                                       f"({-days:.0f} days); {reservoir:.1f} mL left{alarm}"))
        else:
            items.append(DashboardItem(3, refill_by, "refill_due", pid, name,
                                       f"refill due by {refill_by:%Y-%m-%d} (in {days:.0f} days); "
                                       f"{reservoir:.1f} mL left{alarm}"))
    for alarm, name in uow.session.execute(
            select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
            .where(Alarm.acknowledged_at.is_(None)).order_by(Alarm.raised_at)).all():
        state = "cleared" if alarm.cleared_at else "active"
        items.append(DashboardItem(0 if alarm.critical else 2, alarm.raised_at, "alarm",
                                   alarm.patient_id, name,
                                   f"{'critical' if alarm.critical else 'non-critical'} "
                                   f"{alarm.kind.replace('_', ' ')} alarm since "
                                   f"{alarm.raised_at:%Y-%m-%d %H:%M} ({state})",
                                   alarm_id=alarm.id))
    for eri_at, pid, name, serial in uow.session.execute(
            select(Pump.eri_at, Patient.id, Patient.name, Pump.serial)
            .join(Patient, Patient.id == Pump.patient_id)
            .where(Pump.active, Pump.eri_at.is_not(None),
                   Pump.eri_at <= now + timedelta(days=ERI_WINDOW_DAYS))
            .order_by(Pump.eri_at)).all():
        items.append(DashboardItem(4, eri_at, "eri", pid, name,
                                   f"pump {serial} reaches ERI on {eri_at:%Y-%m-%d}: plan "
                                   "replacement"))
    items.sort(key=lambda i: (i.urgency, i.when or now))
    return items


def patient_list(uow: UnitOfWork, search: str = "", limit: int = 200) -> list[dict[str, Any]]:
    require(uow.actor, "view_clinic", uow)
    q = (select(Patient, Pump.refill_by, Pump.dose_per_day)
         .outerjoin(Pump, (Pump.patient_id == Patient.id) & Pump.active)
         .order_by(Patient.name).limit(max(1, min(limit, 1000))))
    s = "".join(ch for ch in search.strip()[:100] if ch >= " ")
    if s:
        like = f"%{s.lower()}%"
        q = q.where(or_(func.lower(Patient.name).like(like), func.lower(Patient.mrn).like(like)))
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
            "risk": withdrawal_risk(patient), "now": uow.now}


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
