"""What the pump did recently: programs set, boluses given, stops and starts, from the pump's
own event log (the controller's ``recent_history``, the wire's ``read_status["history_24h"]``
or ``read_history``), so every face judges a change against the same history.

The reference for the label's per-24 h steps is taken over the window ``[now - 24 h, now]``:
an increase is measured from the *lowest* continuous daily dose in force at any time in the
window, a decrease from the *highest*. So 250 -> +39 % -> +39 % within minutes is judged against
250, and going down then up again cannot be used to climb faster than the label allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from openitb.errors import InvalidInput
from openitb.safety.state import parse_time as _time

WINDOW = timedelta(hours=24)
MAX_ENTRIES = 48  # the pump returns at most this many in a status report (bounded payload)


class HistoryKind(str, Enum):
    PROGRAM = "program"
    BOLUS = "bolus"  # clinician or patient bolus (drug on top of the program)
    STOP = "stop"
    START = "start"
    DELIVERY_ENDED = "delivery_ended"  # a single-bolus program finished: the pump stopped


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime
    kind: HistoryKind
    daily_mcg: float | None = None  # PROGRAM: the program's continuous daily dose (0: none)
    repeats: bool = True  # PROGRAM: False for a single bolus (not a continuous therapy)
    dose_mcg: float | None = None  # BOLUS
    by_patient: bool = False  # BOLUS from the patient therapy manager


@dataclass(frozen=True)
class History:
    """Events in time order, plus the program in force before the first of them."""

    events: tuple[HistoryEvent, ...] = ()
    in_force_before: float | None = None  # continuous daily dose before the first event
    since: datetime | None = None  # the start of what the pump reported
    truncated: bool = False  # the pump dropped older entries of the window

    @staticmethod
    def empty() -> History:
        return History()

    def boluses_since(self, start: datetime) -> float:
        return sum(e.dose_mcg or 0.0 for e in self.events
                   if e.kind is HistoryKind.BOLUS and e.at >= start)

    def continuous_doses_in_window(self, now: datetime, current: float | None) -> list[float]:
        """Every continuous daily dose in force at some time in ``[now - 24 h, now]``.

        A single-bolus program, a stop or a zero program contribute 0 (no continuous
        delivery); ``current`` is the dose in force now (the pump's program)."""
        start = now - WINDOW
        doses: list[float] = []
        before = self.in_force_before
        for e in self.events:
            if e.kind is not HistoryKind.PROGRAM:
                continue
            value = (e.daily_mcg or 0.0) if e.repeats else 0.0
            if e.at <= start:
                before = value
            else:
                doses.append(value)
        if before is not None:
            doses.insert(0, before)
        if current is not None:
            doses.append(current)
        return doses



def history_from_report(report: Mapping[str, Any] | None) -> History:
    """Parse the pump's history report ({"since", "entries", "in_force_before", "truncated"})."""
    if not report:
        return History()
    if not isinstance(report, Mapping):
        raise InvalidInput("history", report, "a map with entries")
    raw = report.get("entries") or []
    if not isinstance(raw, list):
        raise InvalidInput("history.entries", raw, "a list")
    events: list[HistoryEvent] = []
    for i, e in enumerate(raw):
        if not isinstance(e, Mapping):
            raise InvalidInput(f"history.entries[{i}]", e, "a map")
        try:
            kind = HistoryKind(e.get("kind"))
        except ValueError:
            raise InvalidInput(f"history.entries[{i}].kind", e.get("kind"),
                               ", ".join(k.value for k in HistoryKind)) from None
        events.append(HistoryEvent(
            at=_time(e.get("at"), f"history.entries[{i}].at"), kind=kind,
            daily_mcg=float(e["daily_mcg"]) if e.get("daily_mcg") is not None else None,
            repeats=bool(e.get("repeats", True)),
            dose_mcg=float(e["dose_mcg"]) if e.get("dose_mcg") is not None else None,
            by_patient=bool(e.get("by_patient", False))))
    events.sort(key=lambda x: x.at)
    before = report.get("in_force_before")
    since = report.get("since")
    return History(tuple(events), float(before) if before is not None else None,
                   _time(since, "history.since") if since else None,
                   bool(report.get("truncated", False)))
