"""Read-side use cases: the dashboard, the patient list, a patient's record and timeline, the
alarm inbox and the patient/caregiver view. Reads check permissions like writes do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, or_, select
from sqlalchemy.orm import defer

from openitb.clinic import labels
from openitb.clinic.accounts import require, require_patient_access
from openitb.clinic.prediction import predicted_effect
from openitb.clinic.pump_state import state_of
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
    User,
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


def open_alarm() -> Any:
    """The alarms the dashboard and the inbox list: every alarm not yet acknowledged, and an
    acknowledged critical one while its cause persists (the pump has not cleared it: a stalled
    motor, an empty reservoir, end of service) on a pump still implanted. It leaves when the
    pump clears it (refill, restart, the resume after an MRI) or the pump is replaced.
    Queries using it join Pump on Alarm.pump_id."""
    return or_(Alarm.acknowledged_at.is_(None),
               and_(Alarm.critical, Alarm.cleared_at.is_(None), Pump.active))


def _alarms_with_names() -> Any:
    """Alarms with the patient's name and the display name of whoever acknowledged them."""
    return (select(Alarm, Patient.name, User.display_name)
            .join(Patient, Patient.id == Alarm.patient_id)
            .join(Pump, Pump.id == Alarm.pump_id)
            .outerjoin(User, User.username == Alarm.acknowledged_by))


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
    still_open = open_alarm()
    active_refill = (Pump.active, Pump.refill_by.is_not(None))
    # Alarms are counted over the join with their pump, since "still open" asks whether the pump
    # is still implanted.
    alarms = Alarm.__table__.join(Pump.__table__, Pump.id == Alarm.pump_id)
    # (the table counted, its filter, the rows of the page in order, how a row becomes an item)
    classes: list[tuple[Any, tuple[Any, ...], Any, Any]] = [
        (alarms, (still_open, Alarm.critical), _alarms_with_names()
         .order_by(Alarm.raised_at, Alarm.id), _alarm_item),
        # No continuous infusion: a stop of therapy (a stopped pump, or a program that ends
        # continuous delivery, which _sync books as 0 mcg/day): withdrawal risk.
        (Pump, (Pump.active, Pump.dose_per_day <= 0),
         select(Pump.synced_at, Patient.id, Patient.name, Pump.serial)
         .join(Patient, Patient.id == Pump.patient_id).order_by(Pump.synced_at, Pump.id),
         _stopped_item),
        (Pump, (*active_refill, Pump.refill_by < now), _refill_query(), _refill_item(now)),
        (alarms, (still_open, Alarm.critical.is_(False)), _alarms_with_names()
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


def _alarm_item(alarm: Alarm, name: str, acknowledged_by: str | None = None) -> DashboardItem:
    state = "cleared" if alarm.cleared_at else "still active"
    ack = ""
    if alarm.acknowledged_at is not None:
        ack = (f"; acknowledged by {acknowledged_by or alarm.acknowledged_by} at "
               f"{alarm.acknowledged_at:%Y-%m-%d %H:%M}, cause persists")
    return DashboardItem(0 if alarm.critical else 2, alarm.raised_at, "alarm", alarm.patient_id,
                         name, f"{'Critical' if alarm.critical else 'Non-critical'} alarm: "
                         f"{labels.human(alarm.kind, 'alarm')} since "
                         f"{alarm.raised_at:%Y-%m-%d %H:%M} ({state}){ack}", alarm_id=alarm.id)


def _stopped_item(synced: datetime | None, pid: int, name: str, serial: str) -> DashboardItem:
    return DashboardItem(0, synced, "therapy_stopped", pid, name,
                         f"pump {serial}: no continuous infusion (stop of therapy); watch for "
                         "baclofen withdrawal and restart or confirm the plan")


def _eri_item(eri_at: datetime, pid: int, name: str, serial: str) -> DashboardItem:
    return DashboardItem(4, eri_at, "eri", pid, name,
                         f"pump {serial} reaches ERI on {eri_at:%Y-%m-%d}: plan replacement")


PATIENT_SORTS = ("name", "state", "refill_by", "dose")
PATIENT_PAGE = 200
MAX_PATIENTS_SORTED_BY_STATE = 5000  # the state is computed per patient, then sorted


def patient_list(uow: UnitOfWork, search: str = "", limit: int = PATIENT_PAGE, *,
                 sort: str = "name", descending: bool = False,
                 offset: int = 0) -> list[dict[str, Any]]:
    """One page of patients matching ``search``, sorted by name, pump state (most urgent
    first), refill-by date (earliest first; no date last) or dose, each with its pump state
    (clinic/pump_state.py) and whether its refill is overdue."""
    return patient_page(uow, search, limit, sort=sort, descending=descending, offset=offset)[0]


def patient_page(uow: UnitOfWork, search: str = "", limit: int = PATIENT_PAGE, *,
                 sort: str = "name", descending: bool = False,
                 offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """:func:`patient_list` and the number of matching patients."""
    require(uow.actor, "view_clinic", uow)
    if sort not in PATIENT_SORTS:
        from openitb.errors import InvalidInput

        raise InvalidInput("sort", sort, "one of " + ", ".join(PATIENT_SORTS))
    limit = max(1, min(limit, 1000))
    offset = max(0, min(offset, 10**7))
    q = (select(Patient, Pump)
         .outerjoin(Pump, (Pump.patient_id == Patient.id) & Pump.active)
         .options(defer(Pump.state)))  # the controller snapshot is not needed for a list
    s = "".join(ch for ch in search.strip()[:100] if ch >= " ")
    if s:  # the text is matched as typed: % and _ are not wildcards
        escaped = s.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        q = q.where(or_(func.lower(Patient.name).like(like, escape="\\"),
                        func.lower(Patient.mrn).like(like, escape="\\")))
    total = uow.session.scalar(select(func.count()).select_from(q.subquery())) or 0
    column: Any = {"name": Patient.name, "refill_by": Pump.refill_by,
                   "dose": Pump.dose_per_day, "state": Patient.name}[sort]
    order = column.desc() if descending else column.asc()
    if sort in ("refill_by", "dose"):
        order = order.nulls_last()  # patients without a pump (or a date) after the others
    q = q.order_by(order, Patient.name, Patient.id)
    if sort == "state":  # computed per patient, so sorted here (bounded)
        rows = uow.session.execute(q.limit(MAX_PATIENTS_SORTED_BY_STATE)).all()
    else:
        rows = uow.session.execute(q.offset(offset).limit(limit)).all()
    pumps = [pump for _, pump in rows if pump is not None]
    active: dict[int, list[Alarm]] = {}
    programs: dict[int, Program] = {}
    if pumps:
        ids = [pump.id for pump in pumps]
        for a in uow.session.scalars(select(Alarm).where(Alarm.pump_id.in_(ids),
                                                         Alarm.cleared_at.is_(None))):
            active.setdefault(a.pump_id, []).append(a)
        latest = (select(Program.pump_id, func.max(Program.id).label("id"))
                  .where(Program.pump_id.in_(ids)).group_by(Program.pump_id).subquery())
        for prog in uow.session.scalars(select(Program).join(latest, latest.c.id == Program.id)):
            programs[prog.pump_id] = prog
    now = uow.now
    out = []
    for p, pump in rows:
        state = state_of(pump, active.get(pump.id, []) if pump else [],
                         programs.get(pump.id) if pump else None, now)
        refill_by = pump.refill_by if pump else None
        out.append({"id": p.id, "mrn": p.mrn, "name": p.name, "stage": p.stage,
                    "origin": p.origin, "refill_by": refill_by,
                    "dose_per_day": pump.dose_per_day if pump else None,
                    "overdue_days": ((now - refill_by).total_seconds() / 86400
                                     if refill_by is not None and refill_by < now else None),
                    "state": state,
                    "withdrawal_risk": (p.risk_high_injury or p.risk_communication
                                        or p.risk_prior_withdrawal)})
    if sort == "state":
        out.sort(key=lambda r: (r["state"].rank, r["state"].since is None,
                                r["state"].since or now, r["name"], r["id"]),
                 reverse=descending)
        out = out[offset:offset + limit]
    return out, total


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
            "state": state_of(pump, [a for a in alarms if pump and a.pump_id == pump.id],
                              next((g for g in reversed(programs)
                                    if pump and g.pump_id == pump.id), None), uow.now),
            "people": people(uow, {v.by_user for v in visits}
                             | {a.acknowledged_by for a in alarms}),
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
    """Open alarms (see :func:`open_alarm`), critical first, newest first."""
    require(uow.actor, "view_clinic", uow)
    q = (select(Alarm, Patient.name).join(Patient, Patient.id == Alarm.patient_id)
         .join(Pump, Pump.id == Alarm.pump_id)
         .order_by(Alarm.critical.desc(), Alarm.raised_at.desc()).limit(500))
    if not include_acknowledged:
        q = q.where(open_alarm())
    return [(a, n) for a, n in uow.session.execute(q).all()]


def people(uow: UnitOfWork, usernames: Any) -> dict[str, str]:
    """How pages name the users behind ``usernames``: "Dr. Ana Rivera (physiatrist),
    physician"; a patient's own account by the patient's name; a caregiver (an account linked
    to a patient under another name) as "Claire Moreau, caregiver of Leo Moreau". Unknown
    names (the pump, the system) are returned as they are."""
    wanted = {str(n) for n in usernames if n}
    out = {n: n for n in wanted}
    if not wanted:
        return out
    rows = uow.session.execute(
        select(User.username, User.display_name, User.role, Patient.name)
        .outerjoin(Patient, Patient.id == User.patient_id)
        .where(User.username.in_(sorted(wanted)))).all()
    for username, display, role, patient_name in rows:
        out[username] = labels.person(display, role, patient_name)
    return out


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
