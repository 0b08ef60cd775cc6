"""An iCalendar feed of refill appointments: one event per refill cycle of each active pump, on
its refill-by date, with an alarm a few days before.

A refill cycle runs from the implant (cycle 0) or the n-th refill (cycle n) to the next refill.
Its event keeps one UID for the whole cycle (pump serial and cycle number, never the date), so a
calendar that imported it updates it when the date moves. SEQUENCE is derived, not stored: the
number of programs written on the pump since the cycle began, since every program rebooks the
refill-by date (services._sync with rebook). Both are read from stored rows, so every feed built
from the same database says the same. When a refill comes before the date booked for its cycle,
the finished cycle's event is sent once more, STATUS:CANCELLED, with SEQUENCE one higher, so the
old appointment disappears from the calendar instead of lingering beside the new one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from icalendar import Alarm, Calendar, Event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openitb.store.models import AuditEntry, Program, Pump, Refill

ALARM_DAYS_BEFORE = 3


@dataclass(frozen=True)
class RefillEvent:
    uid: str
    sequence: int
    cancelled: bool
    day: date
    patient: str
    serial: str
    low_alarm_at: datetime | None = None
    done_at: datetime | None = None


def cycle_uid(serial: str, cycle: int) -> str:
    return f"refill-{re.sub(r'[^A-Za-z0-9-]', '_', serial)}-cycle{cycle}@openitb"


def _programs_between(s: Session, pump_id: int, start: datetime, end: datetime | None) -> int:
    q = select(func.count()).select_from(Program).where(Program.pump_id == pump_id,
                                                        Program.at > start)
    if end is not None:
        q = q.where(Program.at <= end)
    return int(s.scalar(q) or 0)


def _first_booking(s: Session, pump: Pump) -> datetime | None:
    """The refill-by date booked at the implant (the audit trail keeps the pump as written)."""
    after = s.scalar(select(AuditEntry.after).where(
        AuditEntry.entity == "pump", AuditEntry.entity_id == str(pump.id),
        AuditEntry.action.in_(("implant", "replace_pump"))).order_by(AuditEntry.id).limit(1))
    booked = (after or {}).get("refill_by")
    return datetime.fromisoformat(booked) if booked else None


def refill_events(s: Session,
                  rows: list[tuple[int, str, str, datetime, datetime | None]]) -> list[RefillEvent]:
    """``rows`` (pump id, patient, serial, refill-by, low alarm), as from
    queries.refill_appointments: the current cycle's event for each, and the cancelled event of
    the cycle before when that cycle's refill came early."""
    events: list[RefillEvent] = []
    for pump_id, name, serial, refill_by, low_at in rows:
        pump = s.get(Pump, pump_id)
        if pump is None:
            continue
        refills = list(s.scalars(select(Refill).where(Refill.pump_id == pump_id)
                                 .order_by(Refill.at, Refill.id)))
        cycle = len(refills)
        start = refills[-1].at if refills else pump.implanted_at
        events.append(RefillEvent(cycle_uid(serial, cycle),
                                  _programs_between(s, pump_id, start, None), False,
                                  refill_by.date(), name, serial, low_at))
        if not refills:
            continue
        done = refills[-1]
        prev_start = refills[-2].at if len(refills) > 1 else pump.implanted_at
        booked = refills[-2].refill_by if len(refills) > 1 else _first_booking(s, pump)
        if booked is not None and done.at.date() < booked.date():
            events.append(RefillEvent(
                cycle_uid(serial, cycle - 1),
                _programs_between(s, pump_id, prev_start, done.at) + 1, True, booked.date(),
                name, serial, None, done.at))
    return events


def refill_calendar(events: list[RefillEvent], *, now: datetime) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//OpenITB//clinic refill feed//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "ITB refills")
    for e in events:
        ev = Event()
        ev.add("uid", e.uid)
        ev.add("sequence", e.sequence)
        ev.add("dtstamp", now)
        ev.add("dtstart", e.day)
        ev.add("dtend", e.day + timedelta(days=1))
        ev.add("status", "CANCELLED" if e.cancelled else "CONFIRMED")
        if e.cancelled:
            assert e.done_at is not None
            ev.add("summary", f"Cancelled: ITB refill: {e.patient}")
            ev.add("description", f"Pump {e.serial} was refilled early, on "
                   f"{e.done_at:%Y-%m-%d}; this appointment is no longer needed")
        else:
            ev.add("summary", f"ITB refill: {e.patient}")
            ev.add("description", f"Refill pump {e.serial} by {e.day:%Y-%m-%d}"
                   + (f"; low-reservoir alarm expected {e.low_alarm_at:%Y-%m-%d %H:%M} UTC"
                      if e.low_alarm_at else ""))
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", f"ITB refill due: {e.patient}")
            alarm.add("trigger", timedelta(days=-ALARM_DAYS_BEFORE))
            ev.add_component(alarm)
        cal.add_component(ev)
    return bytes(cal.to_ical())


def feed(s: Session, rows: list[tuple[int, str, str, datetime, datetime | None]], *,
         now: datetime) -> bytes:
    """The feed for ``rows`` (see :func:`refill_events`)."""
    return refill_calendar(refill_events(s, rows), now=now)


__all__: list[Any] = ["RefillEvent", "cycle_uid", "feed", "refill_calendar", "refill_events"]
