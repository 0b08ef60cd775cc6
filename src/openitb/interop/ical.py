"""An iCalendar feed of refill appointments: one event per active pump on its refill-by date,
with an alarm a few days before."""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event


def refill_calendar(rows: list[tuple[int, str, str, datetime, datetime | None]],
                    *, now: datetime) -> bytes:
    """``rows``: (pump id, patient name, serial, refill-by, low-reservoir alarm)."""
    cal = Calendar()
    cal.add("prodid", "-//OpenITB//clinic refill feed//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "ITB refills")
    for pump_id, name, serial, refill_by, low_at in rows:
        ev = Event()
        ev.add("uid", f"refill-{pump_id}-{refill_by:%Y%m%d}@openitb")
        ev.add("dtstamp", now)
        ev.add("dtstart", refill_by.date())
        ev.add("dtend", refill_by.date() + timedelta(days=1))
        ev.add("summary", f"ITB refill: {name}")
        ev.add("description", f"Refill pump {serial} by {refill_by:%Y-%m-%d}"
               + (f"; low-reservoir alarm expected {low_at:%Y-%m-%d %H:%M} UTC" if low_at else ""))
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"ITB refill due: {name}")
        alarm.add("trigger", timedelta(days=-3))
        ev.add_component(alarm)
        cal.add_component(ev)
    return bytes(cal.to_ical())
