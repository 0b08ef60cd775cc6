"""The pump's state at a glance: ONE rule, read by the patient page's banner, the patient list's
State column and the patient's own view.

Pure: the clinic's copy of the pump (the row ``_sync`` keeps), the pump's alarms as last synced,
the latest program and the clinic's now in; a :class:`PumpState` out. What the pump says is
going on comes from its own alarms: an alarm stays active (``cleared_at`` empty) until the pump
itself clears it (a refill clears an empty reservoir, the resume after an MRI a stalled motor, a
restart a memory error); end of service never clears. "No continuous infusion" is the row's
``dose_per_day`` of 0, which ``_sync`` books for a stopped pump and for a program that ends
continuous delivery (the safety kernel's stop rule).

Precedence, most dangerous first: no baclofen reaches the spine (end of service, a stalled motor,
an empty reservoir, a memory error, any other critical alarm, therapy stopped), then what needs
acting on within days (ERI, a refill overdue, a low reservoir), then running.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from openitb.clinic import labels
from openitb.devices import get_pump

SEVERITY_RANK = {"critical": 0, "warning": 1, "ok": 2, "none": 3}
WITHDRAWAL = "watch for baclofen withdrawal (itching, fever, fast heart rate, returning spasticity)"


class PumpRow(Protocol):
    profile: str
    serial: str
    dose_per_day: float
    concentration: float
    reservoir_ml: float
    refill_by: datetime | None
    empty_at: datetime | None
    eri_at: datetime | None


class AlarmRow(Protocol):
    kind: str
    critical: bool
    raised_at: datetime
    reason: str
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class ProgramRow(Protocol):
    at: datetime
    dose_per_day: float


@dataclass(frozen=True)
class PumpState:
    code: str  # a key of labels.PUMP_STATE
    severity: str  # critical | warning | ok | none
    since: datetime | None
    detail: str  # for a clinician: what is going on, with numbers
    action: str  # for a clinician: what to do next
    plain: str  # for the patient or caregiver, in plain words
    also: tuple[str, ...] = ()  # the labels of further conditions, most dangerous first

    @property
    def label(self) -> str:
        return labels.human(self.code, "pump_state")

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]


def _at(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}"


def _day(t: datetime) -> str:
    return f"{t:%Y-%m-%d}"


def _for(since: datetime, now: datetime) -> str:
    """How long, in the unit a clinician reads (minutes, hours, days)."""
    s = max(0.0, (now - since).total_seconds())
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} days"


def _conditions(pump: PumpRow, active: list[AlarmRow], program: ProgramRow | None,
                now: datetime) -> list[PumpState]:
    """Every condition that holds now, most dangerous first."""
    by_kind = {a.kind: a for a in sorted(active, key=lambda a: a.raised_at, reverse=True)}
    out: list[PumpState] = []

    def since(a: AlarmRow) -> str:
        return f"since {_at(a.raised_at)} ({_for(a.raised_at, now)})"

    if (a := by_kind.get("end_of_service")) is not None:
        out.append(PumpState(
            "end_of_service", "critical", a.raised_at,
            f"Pump {pump.serial} reached end of service {since(a)}: it delivers nothing.",
            f"Replace the pump now; {WITHDRAWAL}.",
            "Your pump has stopped for good and gives no baclofen. Call the clinic now."))
    if (a := by_kind.get("motor_stall")) is not None:
        mri = a.reason.upper().startswith("MRI")
        out.append(PumpState(
            "mri_stall" if mri else "motor_stall", "critical", a.raised_at,
            f"Motor {'stopped by an MRI scan' if mri else 'stalled'} {since(a)}: no infusion.",
            ("Interrogate the pump (post-MRI check) to confirm it resumed; if it has not, "
             f"recheck within the hour; {WITHDRAWAL}." if mri else
             f"Interrogate the pump and plan replacement if it does not restart; {WITHDRAWAL}."),
            ("Your pump stopped during the MRI scan and has not restarted yet. Call the clinic "
             "now so they can check it." if mri else
             "Your pump's motor has stopped, so no baclofen is reaching the spine. Call the "
             "clinic now.")))
    if (a := by_kind.get("empty_reservoir")) is not None:
        out.append(PumpState(
            "empty_reservoir", "critical", a.raised_at,
            f"Reservoir empty {since(a)}: no baclofen reaches the spine "
            f"({pump.reservoir_ml:.1f} mL left by the pump's estimate).",
            f"Refill now; {WITHDRAWAL}.",
            "Your pump is empty and gives no baclofen. Call the clinic now for a refill."))
    if (a := by_kind.get("memory_error")) is not None:
        out.append(PumpState(
            "memory_error", "critical", a.raised_at,
            f"Pump memory error {since(a)}: it may have stopped infusing or be running on the "
            "settings it recovered.",
            f"Interrogate the pump, check the program and restart it; {WITHDRAWAL}.",
            "Your pump found a fault in its memory and may have stopped. Call the clinic now."))
    known = {"end_of_service", "motor_stall", "empty_reservoir", "memory_error"}
    for a in by_kind.values():
        if a.critical and a.kind not in known:
            out.append(PumpState(
                "critical_alarm", "critical", a.raised_at,
                f"Critical alarm: {labels.human(a.kind, 'alarm')} {since(a)}.",
                f"Interrogate the pump; {WITHDRAWAL}.",
                "Your pump is alarming. Call the clinic now."))
    if not pump.dose_per_day or pump.dose_per_day <= 0:
        stopped_at = program.at if program is not None and program.dose_per_day <= 0 else None
        out.append(PumpState(
            "therapy_stopped", "critical", stopped_at,
            "No continuous infusion" + (f" since {_at(stopped_at)}" if stopped_at else "")
            + ": the pump is stopped or its program ends continuous delivery.",
            f"Restart the pump or confirm the stop is planned; {WITHDRAWAL}.",
            "Your pump is not giving baclofen at the moment. If the clinic did not plan this, "
            "call them now."))
    eos = None
    if pump.eri_at is not None:
        eos = pump.eri_at + timedelta(days=get_pump(pump.profile).eri_days)
    eri = by_kind.get("eri")
    if eri is not None or (pump.eri_at is not None and pump.eri_at <= now):
        when = eri.raised_at if eri is not None else pump.eri_at
        out.append(PumpState(
            "eri", "warning", when,
            "Battery at its elective replacement indicator"
            + (f" since {_day(when)}" if when else "")
            + (f"; end of service expected {_day(eos)}" if eos else "") + ".",
            "Plan the pump replacement" + (f" before {_day(eos)}" if eos else "") + ".",
            "Your pump's battery is near its end. The clinic will plan a replacement; keep your "
            "appointments."))
    if pump.refill_by is not None and pump.refill_by < now:
        late = _for(pump.refill_by, now)
        empty = f"; empty about {_at(pump.empty_at)}" if pump.empty_at else ""
        out.append(PumpState(
            "refill_overdue", "warning", pump.refill_by,
            f"Refill overdue since {_day(pump.refill_by)} ({late}); "
            f"{pump.reservoir_ml:.1f} mL left{empty}.",
            "Refill as soon as possible.",
            f"Your refill was due on {_day(pump.refill_by)}. Call the clinic to book it now."))
    if (a := by_kind.get("low_reservoir")) is not None:
        out.append(PumpState(
            "low_reservoir", "warning", a.raised_at,
            f"Low-reservoir alarm {since(a)}; {pump.reservoir_ml:.1f} mL left"
            + (f", empty about {_at(pump.empty_at)}" if pump.empty_at else "") + ".",
            "Refill within days" + (f", before {_day(pump.empty_at)}" if pump.empty_at else "")
            + ".",
            "Your pump is getting low. Call the clinic to book a refill within days."))
    return out


def pump_state(pump: PumpRow | None, alarms: Iterable[AlarmRow], program: ProgramRow | None,
               now: datetime) -> PumpState:
    """The state of ``pump`` (None: the patient has no pump) from its alarms (all of this
    pump's, active or not; only the active ones count) and its latest program."""
    if pump is None:
        return PumpState("no_pump", "none", None, "No implanted pump.", "", "")
    active = [a for a in alarms if a.cleared_at is None]
    found = _conditions(pump, active, program, now)
    if found:
        first = found[0]
        rest = tuple(dict.fromkeys(c.label for c in found[1:] if c.label != first.label))
        return PumpState(first.code, first.severity, first.since, first.detail, first.action,
                         first.plain, rest)
    refill = f"; refill by {_day(pump.refill_by)}" if pump.refill_by else ""
    return PumpState(
        "running", "ok", None,
        f"Running: {pump.dose_per_day:.4g} mcg/day at {pump.concentration:g} mcg/mL; "
        f"{pump.reservoir_ml:.1f} mL left{refill}.",
        "No action needed now"
        + (f"; next refill by {_day(pump.refill_by)}" if pump.refill_by else "") + ".",
        f"Your pump is working: {pump.dose_per_day:.4g} mcg of baclofen a day"
        + (f". Next refill by {pump.refill_by:%A %d %B %Y}." if pump.refill_by else "."))


def state_of(pump: Any, alarms: Iterable[Any], program: Any, now: datetime) -> PumpState:
    """:func:`pump_state` for ORM rows (typed loosely: the rows satisfy the protocols)."""
    return pump_state(pump, alarms, program, now)
