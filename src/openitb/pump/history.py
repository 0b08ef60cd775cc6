"""The pump's recent therapy history (programs, boluses, stops, starts) read from its event log.

Every ``read_status`` carries the last 24 h of it (``history_24h``), and the safety kernel judges a
change against it. Read naively, each status parses the time of every log entry (up to 4,096):
milliseconds per read on a busy pump. ``HistoryIndex`` parses each entry once, when it is first
seen (the log is append-only: entries are added at the end and dropped from the front), and keeps
the last answer until the log or the pump's time moves. ``recent`` gives exactly what the plain
reverse scan of the log gives (``scan``, the reference the property tests compare it with).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from openitb.pump.eventlog import EventLog

HISTORY_MAX_ENTRIES = 48  # bounded: a status report must fit one telemetry frame
# Event-log kinds -> history kinds the safety kernel reads (openitb.safety.history).
HISTORY_KINDS = {"command_Program": "program", "command_ClinicianBolus": "bolus",
                 "command_Stop": "stop", "command_Start": "start",
                 "single_bolus_done": "delivery_ended"}

ToSeconds = Callable[[str], int]


class _Item:
    """One history-kind log entry, parsed once: its time, what it shows inside the window
    (None: nothing), and the daily dose it leaves in force when older than the window (None: it
    is not a program that says so)."""

    __slots__ = ("seq", "at_s", "shown", "in_force")

    def __init__(self, e: dict[str, Any], kind: str, to_seconds: ToSeconds) -> None:
        d = e.get("data") or {}
        self.seq: int = e["seq"]
        self.at_s = to_seconds(e["at"])
        self.in_force: float | None = None
        base: dict[str, Any] = {"at": e["at"], "kind": kind}
        shown: dict[str, Any] | None = base
        if kind == "program":
            if "daily_mcg" in d:
                self.in_force = float(d["daily_mcg"]) if d.get("repeats", True) else 0.0
                shown = {**base, "daily_mcg": d["daily_mcg"], "repeats": d.get("repeats", True)}
            else:
                shown = None
        elif kind == "bolus":
            shown = ({**base, "dose_mcg": d["dose_mcg"],
                      "by_patient": d.get("by_patient", False)} if "dose_mcg" in d else None)
        self.shown = shown


def _items(entries: Iterable[dict[str, Any]], to_seconds: ToSeconds) -> list[_Item]:
    out = []
    for e in entries:
        kind = HISTORY_KINDS.get(e["kind"])
        if kind is not None:
            out.append(_Item(e, kind, to_seconds))
    return out


def _answer(items: list[_Item] | deque[_Item], dropped: int, since: int, since_iso: str, hours: float,
            limit: int) -> dict[str, Any]:
    """The history of ``items`` (oldest first), newest first scanned back to the program in
    force before ``since``."""
    picked: list[dict[str, Any]] = []
    before: float | None = None
    found_before = False
    for it in reversed(items):
        if it.at_s < since:
            if it.in_force is not None:
                before, found_before = it.in_force, True
                break
            continue
        if it.shown is not None:
            picked.append(it.shown)
    truncated = len(picked) > limit or (not found_before and dropped > 0)
    picked = picked[:limit]
    picked.reverse()
    return {"since": since_iso, "hours": hours, "entries": picked,  # the items' own dicts
            "in_force_before": before, "truncated": truncated}


def scan(log: EventLog, since: int, since_iso: str, hours: float, limit: int,
         to_seconds: ToSeconds) -> dict[str, Any]:
    """The reference: parse the whole log now."""
    return _copy(_answer(_items(log.entries, to_seconds), log.dropped, since, since_iso, hours,
                         limit))


def _copy(answer: dict[str, Any]) -> dict[str, Any]:
    # A caller may change what it is given; the kept answer must not change with it.
    return {**answer, "entries": [dict(x) for x in answer["entries"]]}


class HistoryIndex:
    """The history-kind entries of one event log, parsed once, and the last answer."""

    def __init__(self, to_seconds: ToSeconds) -> None:
        self._to_seconds = to_seconds
        self._log: EventLog | None = None
        self._next = 0  # the log sequence up to which entries are indexed
        self._items: deque[_Item] = deque()
        self._last: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.rebuilds = 0  # how often the whole log was parsed (tests, benchmarks)
        # Counts the answers computed: equal counts, the same answer (what a caller that keeps
        # something derived from it, such as its encoding, checks before reusing that).
        self.answers = 0

    def _sync(self, log: EventLog) -> None:
        new = log.next_seq - self._next
        if log is not self._log or new < 0 or new > len(log.entries):
            # Another log (restored from a snapshot, or put back after a refused command).
            self._log, self._items = log, deque(_items(log.entries, self._to_seconds))
            self._next = log.next_seq
            self.rebuilds += 1
            return
        if new:
            self._items.extend(_items(log.entries[len(log.entries) - new:], self._to_seconds))
            self._next = log.next_seq
        first = log.entries[0]["seq"] if log.entries else log.next_seq
        while self._items and self._items[0].seq < first:
            self._items.popleft()  # dropped from the front of a full log

    def recent(self, log: EventLog, since: int, since_iso: str, hours: float,
               limit: int) -> dict[str, Any]:
        key = (since, hours, limit, log.next_seq, log.dropped)
        last = self._last
        if last is not None and last[0] == key and log is self._log:
            return _copy(last[1])
        self._sync(log)
        answer = _answer(self._items, log.dropped, since, since_iso, hours, limit)
        self._last = (key, answer)
        self.answers += 1
        return _copy(answer)
