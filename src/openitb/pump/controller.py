"""The pump controller: a pure, deterministic state machine.

``advance(to_time)`` runs the pump up to a time; ``handle(command)`` applies a command at the
current time and returns a :class:`Response`. Time comes in as arguments (UTC ``datetime``);
nothing reads a clock. Delivery is by discrete motor strokes: within each span of constant rate
the number of strokes is computed in closed form from an exact fractional accumulator
(``fractions.Fraction``), so the cost grows with the number of rate changes, not with time.

Volumes are integer nanolitres. The pump's reservoir *estimate* falls by the nominal stroke; the
*true* reservoir by the pump's true stroke (drawn once inside the profile's flow tolerance).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from openitb.devices import PumpProfile, get_pump
from openitb.errors import OpenITBError
from openitb.pump import battery
from openitb.pump.alarms import AlarmBook
from openitb.pump.catheter import FAULTS, Catheter
from openitb.pump.commands import (
    AcknowledgeAlarm,
    AlarmTest,
    BridgeBolus,
    CatheterFault,
    ClinicianBolus,
    Command,
    MriEnd,
    MriStart,
    PocketFill,
    PowerOnReset,
    PrimingBolus,
    Program,
    ReadLog,
    ReadStatus,
    Refill,
    Response,
    SetClock,
    SetLowAlarm,
    Start,
    Stop,
)
from openitb.pump.eventlog import EventLog
from openitb.pump.history import HISTORY_MAX_ENTRIES, HistoryIndex
from openitb.pump.journal import READS, BadCommandRecord, decode_command, encode_command
from openitb.pump.memory import MemoryCorrupted, MemoryPort, MemoryWriteFailed, Recovery
from openitb.pump.status import PumpStatus
from openitb.therapy.prescription import (
    DAY_S,
    Prescription,
    parse_prescription,
    validate_for_pump,
)

R = TypeVar("R")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_S = 365.25 * DAY_S
TELEMETRY_S_PER_COMMAND = 10  # radio time charged to the battery per programmer command (default)
# Reads counted before one is journaled (no fsync) to carry their radio charge: what a crash can
# lose is bounded (256 x 5.6 uAh = 1.4 mAh of a 612 mAh cell, devices.toml), at one unsynced
# write per this many reads.
MAX_UNJOURNALED_READS = 256
ENVIRONMENT = frozenset({"MriStart", "MriEnd", "PowerOnReset", "CatheterFault", "PocketFill"})


def to_seconds(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("time must be timezone-aware UTC")
    return math.floor((t - EPOCH).total_seconds())


def to_datetime(s: int | Fraction) -> datetime:
    if type(s) is int:  # the common case (status, log), without Fraction arithmetic
        return EPOCH + timedelta(seconds=s)
    whole = math.floor(s)
    micro = math.ceil((Fraction(s) - whole) * 1_000_000)
    return EPOCH + timedelta(seconds=whole, microseconds=micro)


def iso(s: int | Fraction) -> str:
    return to_datetime(s).isoformat()


def draw_true_stroke_nl(profile: PumpProfile, rng: np.random.Generator) -> int:
    tol = profile.flow_tolerance_pct / 100.0
    lo = math.ceil(profile.stroke_volume_nl * (1 - tol))
    hi = math.floor(profile.stroke_volume_nl * (1 + tol))
    return int(rng.integers(lo, hi + 1))


def _frac(s: str) -> Fraction:
    return Fraction(s)


class _DailyRate:
    """A daily program's strokes in closed form over any span of at most a day: the cumulative
    strokes from midnight (exact Fractions, prefix sums over the segments) and the top rate."""

    __slots__ = ("starts", "segs", "before", "day_total", "top")

    def __init__(self, segs: list[tuple[int, int, Fraction]]) -> None:
        self.segs = segs
        self.starts = [s for s, _, _ in segs]
        self.before: list[Fraction] = []
        acc = Fraction(0)
        for start, end, rate in segs:
            self.before.append(acc)
            acc += rate * (end - start)
        self.day_total = acc
        self.top = max((r for _, _, r in segs), default=Fraction(0))

    def _from_midnight(self, x: int) -> Fraction:
        i = bisect.bisect_right(self.starts, x) - 1
        if i < 0:
            return Fraction(0)
        start, end, rate = self.segs[i]
        return self.before[i] + rate * (min(x, end) - start)

    def over(self, tod: int, dt: int) -> Fraction:
        """Strokes (fractional) over [tod, tod + dt) of the day, 0 <= dt <= one day."""
        if tod + dt <= DAY_S:
            return self._from_midnight(tod + dt) - self._from_midnight(tod)
        return self.day_total - self._from_midnight(tod) + self._from_midnight(tod + dt - DAY_S)


class PumpController:
    """One implanted pump. Build with :meth:`manufacture` (seeded) or directly with a true stroke."""

    # Spans of a daily program are merged across its step boundaries (one closed-form span per
    # day, see _merged_span). False forces the general step-by-step path everywhere: the
    # reference the property tests compare the merged path with.
    merge_daily_spans = True

    def __init__(
        self,
        profile: PumpProfile,
        now: datetime,
        *,
        true_stroke_nl: int | None = None,
        catheter_volume_nl: int | None = None,
        log_capacity: int = 4096,
        memory: MemoryPort | None = None,
    ) -> None:
        self.profile = profile
        self.memory = memory
        self.t = to_seconds(now)
        self.born = self.t
        self.clock_offset = 0  # pump clock = true time + offset
        self.nominal_nl = profile.stroke_volume_nl
        self.true_stroke_nl = true_stroke_nl if true_stroke_nl is not None else self.nominal_nl
        internal = round(profile.internal_volume.value * 1_000_000)
        cath = catheter_volume_nl if catheter_volume_nl is not None else round(0.0026 * 110 * 1e6)
        self.catheter = Catheter(internal + cath, internal_nl=internal)
        self.reservoir_true_nl = 0
        self.reservoir_estimate_nl = 0
        self.reservoir_conc = 0.0
        self.low_threshold_nl = round(profile.low_alarm_default.value * 1_000_000)
        self.prescription: Prescription | None = None
        self.program_conc = 0.0
        self.program_started = 0
        self.running = False
        self.empty = False
        self.stalled = False
        self.recovery_until: int | None = None  # MRI recovery end
        self.awaiting_interrogation = False
        self.eos = False
        # (strokes per second, end time, replaces the basal rate)
        self.bolus: tuple[Fraction, int, bool] | None = None
        self.acc = Fraction(0)  # fractional stroke accumulator, in [0, 1)
        self.strokes = 0
        self.battery_used_uah = 0.0
        self.filled_nl = 0
        self.withdrawn_nl = 0
        self.delivered_nl = 0
        self.delivered_mcg = 0.0
        self.tissue_nl = 0
        self.tissue_mcg = 0.0
        self.alarms = AlarmBook()
        self.log = EventLog(log_capacity)
        # Counts state-changing commands and events (never reads); a write may carry the
        # version it expects (the precondition) and is refused when it no longer holds.
        self.state_version = 0
        self.history: list[dict[str, Any]] = []  # (time, reservoir, delivered) samples per span
        self.record_history = False
        self._seg_cache: tuple[Any, float, list[tuple[int, int, Fraction]], float] | None = None
        self._day_cache: tuple[Any, float, _DailyRate] | None = None
        self.history_index = HistoryIndex(_log_seconds)
        # Reads since the last journal record: a read writes nothing; its radio charge rides on
        # the next record ("reads"), which a replay applies first (see ``read``).
        self.unjournaled_reads = 0
        self._log("manufactured", {"true_stroke_nl": self.true_stroke_nl})

    @classmethod
    def manufacture(cls, profile: PumpProfile | str, now: datetime, rng: np.random.Generator,
                    **kw: Any) -> PumpController:
        p = get_pump(profile) if isinstance(profile, str) else profile
        return cls(p, now, true_stroke_nl=draw_true_stroke_nl(p, rng), **kw)

    # ---- derived ---------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return to_datetime(self.t)

    @property
    def state(self) -> PumpStatus:
        if self.eos:
            return PumpStatus.END_OF_SERVICE
        if self.stalled or self.recovery_until is not None or self.awaiting_interrogation:
            return PumpStatus.MOTOR_STALL
        if self.empty:
            return PumpStatus.EMPTY
        return PumpStatus.RUNNING if self.running else PumpStatus.STOPPED

    @property
    def battery_remaining_uah(self) -> float:
        return max(0.0, self.profile.battery_capacity_mah * 1000 - self.battery_used_uah)

    def _delivering(self) -> bool:
        return (self.running and not self.empty and not self.eos and not self.stalled
                and self.recovery_until is None and not self.awaiting_interrogation)

    def _strokes_per_s(self, dose_per_day: float) -> Fraction:
        if self.program_conc <= 0:
            return Fraction(0)
        return (Fraction(dose_per_day) * 1_000_000
                / (Fraction(self.program_conc) * DAY_S * self.nominal_nl))

    def _program_rate(self) -> tuple[Fraction, int | None]:
        """Basal strokes/s now and the next time it may change (None: never)."""
        p = self.prescription
        if p is None or not self.running:
            return Fraction(0), None
        segs = self._segments()
        if p.repeats_daily:
            tod = (self.t + self.clock_offset) % DAY_S
            i = bisect.bisect_right(segs, tod, key=lambda s: s[0]) - 1
            if i >= 0 and tod < segs[i][1]:
                return segs[i][2], self.t + segs[i][1] - tod
            return Fraction(0), self.t + DAY_S - tod
        elapsed = self.t - self.program_started
        for start, end, rate in segs:
            if start <= elapsed < end:
                return rate, self.program_started + end
        return Fraction(0), None

    def _segments(self) -> list[tuple[int, int, Fraction]]:
        """The program's segments as (start_s, end_s, strokes per second), cached per program."""
        c = self._seg_cache
        if c is None or c[0] is not self.prescription or c[1] != self.program_conc:
            assert self.prescription is not None
            segs = [(s.start_s, s.end_s, self._strokes_per_s(s.dose_per_day.value))
                    for s in self.prescription.segments()]
            daily = float(self._strokes_per_s(self.prescription.daily_dose().value) * DAY_S)
            c = (self.prescription, self.program_conc, segs, daily)
            self._seg_cache = c
        return c[2]

    def daily_strokes(self) -> float:
        if self.prescription is None or not self.running:
            return 0.0
        self._segments()
        assert self._seg_cache is not None
        return self._seg_cache[3]

    def _daily_rate(self) -> _DailyRate:
        c = self._day_cache
        if c is None or c[0] is not self.prescription or c[1] != self.program_conc:
            c = (self.prescription, self.program_conc, _DailyRate(self._segments()))
            self._day_cache = c
        return c[2]

    # ---- time ------------------------------------------------------------------------------
    def advance(self, to_time: datetime) -> None:
        target = to_seconds(to_time)
        if target < self.t:
            raise OpenITBError(f"cannot advance backwards: {to_time} is before {self.now}")
        if target == self.t:
            return
        self._journal({"op": "advance", "to": target}, sync=False)  # recomputable from the clock
        self._run_until(target)
        self._checkpoint_if_due()

    def _run_until(self, target: int) -> None:
        eos_age = self.born + math.floor(self.profile.max_service_years * YEAR_S)
        eri_age = eos_age - self.profile.eri_days * DAY_S
        while self.t < target:
            if self.eos:
                self.t = target
                break
            if self.bolus is not None and self.bolus[1] <= self.t:
                self.bolus = None
                self._log("bolus_end")
            if self.prescription is not None and self.running and not self.prescription.repeats_daily:
                if self.t >= self.program_started + self.prescription.segments()[-1].end_s:
                    self.running = False
                    self._log("single_bolus_done")
            if self.recovery_until is not None and self.t >= self.recovery_until:
                self.recovery_until = None
                if self.profile.mri_resume == "auto":
                    self._resume_after_mri()
                else:
                    self.awaiting_interrogation = True
                    self._log("mri_recovered_awaiting_interrogation")
            if self._merged_span(target, eos_age, eri_age):
                self._after_span(eos_age, eri_age)
                continue
            basal, change = self._program_rate()
            rate = basal
            ends = [target, self.t + DAY_S, eos_age]
            if self.t < eri_age:
                ends.append(eri_age)
            if change is not None:
                ends.append(change)
            if self.bolus is not None:
                ends.append(self.bolus[1])
                if self.running:
                    rate = self.bolus[0] if self.bolus[2] else rate + self.bolus[0]
            if self.recovery_until is not None:
                ends.append(self.recovery_until)
            delivering = self._delivering() and rate > 0
            per_s = float(rate) if delivering else 0.0
            life = battery.seconds_until_empty(self.profile, self.battery_remaining_uah, per_s)
            ends.append(self.t + max(1, math.ceil(life)))
            end = min(e for e in ends if e > self.t)
            self._span(end, rate if delivering else Fraction(0))
            self.t = end
            self._after_span(eos_age, eri_age)

    def _after_span(self, eos_age: int, eri_age: int) -> None:
        if self.t >= eos_age:
            self._end_of_service("maximum service life reached")
        elif self.battery_remaining_uah <= 0:
            self._end_of_service("battery depleted")
        else:
            self._check_eri(eri_age)
        if self.record_history:
            self._sample()

    def _merged_span(self, target: int, eos_age: int, eri_age: int) -> bool:
        """Advance a daily program over up to a day in one closed-form span, across its step
        boundaries, when nothing can happen inside: returns False (and changes nothing) when the
        general path must take the span step by step.

        The step-by-step path adds each step's strokes to the exact accumulator and floors; the
        floor of the sum is the same count, so only events *inside* the span need the steps:
        the low-reservoir and empty points, the ERI projection, battery depletion. Each is
        checked at the span's end (all are monotone in time) and sends the span back to the
        general path. Boluses, kinks and leaks (whose per-span rounding depends on the span
        boundaries) and recorded history (sampled per span) always take the general path."""
        p = self.prescription
        if (not self.merge_daily_spans or p is None or not self.running or not p.repeats_daily
                or self.bolus is not None or self.record_history
                or self.catheter.fault in ("kink", "leak")):
            return False
        daily = self._daily_rate()
        delivering = self._delivering()
        ends = [target, self.t + DAY_S, eos_age]
        if self.t < eri_age:
            ends.append(eri_age)
        if self.recovery_until is not None:
            ends.append(self.recovery_until)
        end = min(e for e in ends if e > self.t)
        # Battery life at the program's top rate bounds every step's own bound from below.
        top = float(daily.top) if delivering else 0.0
        life = battery.seconds_until_empty(self.profile, self.battery_remaining_uah, top)
        if self.t + max(1, math.ceil(life)) <= end:
            return False
        dt = end - self.t
        n = 0
        total = self.acc
        if delivering:
            total = self.acc + daily.over((self.t + self.clock_offset) % DAY_S, dt)
            n = math.floor(total)
            est = self.reservoir_estimate_nl
            if n >= est // self.nominal_nl:
                return False  # empties inside the span
            if (n > 0 and est > self.low_threshold_nl
                    and self.alarms.active("low_reservoir") is None
                    and -(-(est - self.low_threshold_nl) // self.nominal_nl) <= n):
                return False  # crosses the low-reservoir threshold inside the span
        used = self.battery_used_uah + battery.drain_uah(self.profile, dt, n)
        remaining = self.profile.battery_capacity_mah * 1000 - used
        if remaining <= 0:
            return False
        if (self.alarms.active("eri") is None
                and battery.projected_days(self.profile, remaining, self.daily_strokes())
                < self.profile.eri_days):
            return False  # the ERI projection is crossed inside the span
        if delivering:
            self.acc = total - n
            if n > 0:
                self._move(n)
        self.battery_used_uah = used
        self.t = end
        return True

    def _span(self, end: int, rate: Fraction) -> None:
        """Deliver over [self.t, end) at a constant ``rate`` (strokes/s): closed form."""
        dt = end - self.t
        n = 0
        if rate > 0:
            acc0 = self.acc
            total = acc0 + rate * dt
            n = math.floor(total)
            k_empty = self.reservoir_estimate_nl // self.nominal_nl
            t_empty: Fraction | None = None
            if n >= k_empty:
                n = k_empty
                t_empty = self.t + (k_empty - acc0) / rate if k_empty > 0 else Fraction(self.t)
                self.acc = Fraction(0)
            else:
                self.acc = total - n
            if n > 0:
                est = self.reservoir_estimate_nl
                if est > self.low_threshold_nl and self.alarms.active("low_reservoir") is None:
                    k_low = -(-(est - self.low_threshold_nl) // self.nominal_nl)
                    if k_low <= n:
                        self._raise("low_reservoir", self.t + (k_low - acc0) / rate,
                                    f"reservoir estimate at {self.low_threshold_nl / 1e6:g} mL")
                self._move(n)
            if t_empty is not None:
                self.empty = True
                self._raise("empty_reservoir", t_empty, "reservoir estimate below one stroke")
        self.battery_used_uah += battery.drain_uah(self.profile, dt, n)

    def _move(self, n: int) -> None:
        self.strokes += n
        self.reservoir_estimate_nl -= n * self.nominal_nl
        factor = self.catheter.flow_factor()
        if factor == 0.0:
            return  # occlusion: the motor strokes but nothing moves
        # A kink lets only part of each stroke through; the rest stays in the reservoir.
        moved = min(math.floor(n * self.true_stroke_nl * factor), self.reservoir_true_nl)
        self.reservoir_true_nl -= moved
        to_csf, to_tissue = self.catheter.push(moved, self.reservoir_conc)
        for v, c in to_csf:
            self.delivered_nl += v
            self.delivered_mcg += v * c / 1_000_000
        for v, c in to_tissue:
            self.tissue_nl += v
            self.tissue_mcg += v * c / 1_000_000

    # ---- alarms ----------------------------------------------------------------------------
    def _raise(self, kind: str, at: int | Fraction, reason: str = "") -> None:
        if self.alarms.raise_(kind, iso(at), reason):
            self._log("alarm_raised", {"kind": kind, "reason": reason}, at)

    def _clear(self, kind: str) -> None:
        if self.alarms.clear(kind, iso(self.t)):
            self._log("alarm_cleared", {"kind": kind})

    def _check_eri(self, eri_age: int) -> None:
        if self.alarms.active("eri") is not None or self.eos:
            return
        if self.t >= eri_age:
            self._raise("eri", self.t, "maximum service life within the ERI period")
            return
        days = battery.projected_days(self.profile, self.battery_remaining_uah, self.daily_strokes())
        if days < self.profile.eri_days:
            self._raise("eri", self.t, f"projected battery life {days:.1f} days")

    def _end_of_service(self, reason: str) -> None:
        self.eos = True
        self.running = False
        self.bolus = None
        self.acc = Fraction(0)
        self._raise("end_of_service", self.t, reason)

    def _resume_after_mri(self) -> None:
        self.awaiting_interrogation = False
        self.recovery_until = None
        self._clear("motor_stall")
        self._log("mri_recovered")

    # ---- commands --------------------------------------------------------------------------
    def handle(self, command: Command) -> Response:
        """Apply ``command`` at the current time. A refused command changes nothing."""
        name = type(command).__name__
        method = getattr(self, f"_cmd_{name}", None)
        if method is None:
            return Response(False, f"unknown command {name}")
        if name in READS:
            def answer() -> Response:
                try:
                    r: Response = method(command)
                except OpenITBError as exc:
                    r = Response(False, str(exc))
                return r
            return self.read(command, answer)
        # Write-ahead: the command is in the journal (fsynced) before it acts; a failed write
        # raises MemoryWriteFailed here and nothing has changed.
        self._journal({"op": "command", "command": encode_command(command)}, sync=True)
        if self.awaiting_interrogation and name not in ENVIRONMENT:
            self._resume_after_mri()  # any telemetry session is an interrogation
        before = self.to_dict()
        try:
            resp: Response = method(command)
        except OpenITBError as exc:
            resp = Response(False, str(exc))
        except Exception:
            self._restore_from(before)  # a fault inside the pump changes nothing (live, replayed)
            raise
        if not resp.ok:
            self._restore_from(before)
            return resp
        if name not in ENVIRONMENT:
            self._charge_telemetry()
        self.state_version += 1
        self._log(f"command_{name}", {"ok": resp.ok, **_history_data(command)})
        self._checkpoint_if_due()
        return resp

    def read(self, command: Command, answer: Callable[[], R]) -> R:
        """A telemetry read (status or log): ``answer`` is computed after the read's effects on
        the pump and before its radio charge, as for every command.

        A read changes the pump in two ways only: it ends the wait after an MRI (an
        interrogation), and it charges the battery for its radio time. The first is journaled
        like any command (no fsync: a replay ends the wait at the same record). The second
        writes nothing: the read is counted, and the count rides on the next journal record
        (``reads``), whose replay charges that many reads first, in the same order, so the
        fingerprint matches; a snapshot holds the charges and resets the count. A crash loses at
        most the radio charge of the reads since the last record (a clock catch-up writes one
        each second; at most MAX_UNJOURNALED_READS of them: then a read journals itself, no
        fsync), never a command."""
        if self.awaiting_interrogation or self.unjournaled_reads >= MAX_UNJOURNALED_READS:
            self._journal({"op": "command", "command": encode_command(command)}, sync=False)
            if self.awaiting_interrogation:
                self._resume_after_mri()  # any telemetry session is an interrogation
        elif self.memory is not None:
            self.unjournaled_reads += 1
        out = answer()
        self._charge_telemetry()
        self._checkpoint_if_due()
        return out

    def _charge_telemetry(self, n: int = 1) -> None:
        """The radio charge of ``n`` programmer commands, one addition each (a replay adds the
        same floats in the same order as the live pump did)."""
        uah = battery.telemetry_uah(self.profile, TELEMETRY_S_PER_COMMAND)
        for _ in range(n):
            self.battery_used_uah += uah

    def check_version(self, expected: int | None) -> str | None:
        """The precondition of a write: None if it holds (or none was given), else why not."""
        if expected is None or expected == self.state_version:
            return None
        return (f"the pump's state changed since it was read (state version {self.state_version}"
                f", expected {expected}): interrogate and review again; nothing was written")

    def note(self, kind: str, data: dict[str, Any] | None = None, *,
             changes_state: bool = False) -> None:
        """An event-log entry from outside the controller (the service's patient bolus book),
        journaled (fsynced) before it is logged. ``changes_state``: the entry records a write
        (limits set, patient bolus disabled), so it bumps ``state_version`` like a command;
        the replay does the same from the journal record."""
        self._journal({"op": "note", "kind": kind, "data": data or {},
                       "changes_state": changes_state}, sync=True)
        self._note(kind, data, changes_state)
        self._checkpoint_if_due()

    def _note(self, kind: str, data: dict[str, Any] | None, changes_state: bool) -> None:
        if changes_state:
            self.state_version += 1
        self._log(kind, data)

    def memory_alarm(self, reason: str) -> None:
        """Raise the memory alarm for damage found on restore (journaled like any input)."""
        self._journal({"op": "memory_alarm", "reason": reason[:4000]}, sync=True)
        self._raise("memory_error", self.t, reason[:4000])

    def recent_history(self, hours: float = 24.0, limit: int = HISTORY_MAX_ENTRIES
                       ) -> dict[str, Any]:
        """Programs, boluses, stops and starts of the last ``hours`` from the event log, with
        the program in force before them; at most ``limit`` entries (the newest), bounded.
        Parsed once per log entry and kept until the log or the time moves (pump/history.py)."""
        since = self.t - round(hours * 3600)
        return self.history_index.recent(self.log, since, iso(since), hours, limit)

    def _refuse_if_eos(self) -> Response | None:
        return Response(False, "end of service: the pump no longer infuses") if self.eos else None

    def _cmd_SetClock(self, c: SetClock) -> Response:
        self.clock_offset = to_seconds(c.pump_time) - self.t
        return Response(True)

    def _cmd_Program(self, c: Program) -> Response:
        if (r := self._refuse_if_eos()) is not None:
            return r
        if c.concentration.value <= 0:
            return Response(False, "concentration must be above 0 mcg/mL")
        validate_for_pump(c.prescription, self.profile, c.concentration)
        self.prescription = c.prescription
        self.program_conc = c.concentration.value
        self.program_started = self.t
        return Response(True, data={"daily_strokes": self.daily_strokes()})

    def _cmd_Start(self, c: Start) -> Response:
        if (r := self._refuse_if_eos()) is not None:
            return r
        if self.prescription is None:
            return Response(False, "no program: send Program first")
        if self.running:
            return Response(False, "already running")
        if self.empty:
            return Response(False, "reservoir empty: refill first")
        self.running = True
        self.program_started = self.t
        self.acc = Fraction(0)
        self._clear("memory_error")
        return Response(True)

    def _cmd_Stop(self, c: Stop) -> Response:
        if not self.running:
            return Response(False, "already stopped")
        self.running = False
        self.bolus = None
        return Response(True)

    def _cmd_ClinicianBolus(self, c: ClinicianBolus) -> Response:
        if (r := self._refuse_if_eos()) is not None:
            return r
        if not self.running or self.prescription is None:
            return Response(False, "the pump must be running a program to give a bolus")
        if self.bolus is not None:
            return Response(False, "a bolus is already running")
        seconds = round(c.duration.value * 3600)
        if not 60 <= seconds <= DAY_S:
            return Response(False, f"bolus duration {c.duration} must be 1 min to 24 h")
        if c.dose.value <= 0:
            return Response(False, "bolus dose must be above 0 mcg")
        # Like a volume bolus, at least one stroke: less is not a dose the motor can give.
        stroke_mcg = self.nominal_nl / 1e6 * self.program_conc
        if c.dose.value < stroke_mcg:
            return Response(False, f"bolus dose {c.dose.value:.3g} mcg is less than one stroke "
                                   f"({stroke_mcg:.3g} mcg at {self.program_conc:g} mcg/mL)")
        rate = self._strokes_per_s(c.dose.value * DAY_S / seconds)
        flow_ml_h = float(rate) * self.nominal_nl * 3600 / 1e6
        if flow_ml_h > self.profile.bolus_max_flow_ml_per_hour + 1e-12:
            return Response(False, f"bolus flow {flow_ml_h:.3g} mL/h above the "
                                   f"{self.profile.bolus_max_flow_ml_per_hour:g} mL/h limit")
        self.bolus = (rate, self.t + seconds, False)
        return Response(True, data={"ends_at": iso(self.t + seconds)})

    def _volume_bolus(self, volume_ml: float, hours: float) -> Response:
        if (r := self._refuse_if_eos()) is not None:
            return r
        if not self.running or self.prescription is None:
            return Response(False, "the pump must be running a program to give a bolus")
        if self.bolus is not None:
            return Response(False, "a bolus is already running")
        seconds = round(hours * 3600)
        if not 60 <= seconds <= DAY_S:
            return Response(False, f"bolus duration {hours:g} h must be 1 min to 24 h")
        strokes = round(volume_ml * 1_000_000) // self.nominal_nl
        if strokes < 1:
            return Response(False, "bolus volume must be at least one stroke")
        rate = Fraction(strokes, seconds)
        flow_ml_h = float(rate) * self.nominal_nl * 3600 / 1e6
        if flow_ml_h > self.profile.bolus_max_flow_ml_per_hour + 1e-12:
            return Response(False, f"bolus flow {flow_ml_h:.3g} mL/h above the "
                                   f"{self.profile.bolus_max_flow_ml_per_hour:g} mL/h limit")
        self.acc = Fraction(0)
        self.bolus = (rate, self.t + seconds, True)
        return Response(True, data={"ends_at": iso(self.t + seconds), "strokes": strokes})

    def _cmd_PrimingBolus(self, c: PrimingBolus) -> Response:
        return self._volume_bolus(c.volume.value, c.duration.value)

    def _cmd_BridgeBolus(self, c: BridgeBolus) -> Response:
        return self._volume_bolus(c.volume.value, c.duration.value)

    def _cmd_Refill(self, c: Refill) -> Response:
        if (r := self._refuse_if_eos()) is not None:
            return r
        if c.concentration.value <= 0:
            return Response(False, "concentration must be above 0 mcg/mL")
        self.profile.check_volume(c.volume)
        new_nl = round(c.volume.value * 1_000_000)
        withdrawn, expected = self.reservoir_true_nl, self.reservoir_estimate_nl
        self.withdrawn_nl += withdrawn
        self.filled_nl += new_nl
        if self.catheter.tip_concentration() == 0.0 and self.delivered_nl == 0:
            old = self.catheter  # never delivered: the path is primed with the new drug
            self.catheter = Catheter(old.volume_nl, c.concentration.value, old.ml_per_cm,
                                     old.internal_nl)
            if old.fault != "none":
                self.catheter.set_fault(old.fault, old.position_cm, old.fraction)
        self.reservoir_true_nl = self.reservoir_estimate_nl = new_nl
        self.reservoir_conc = c.concentration.value
        if new_nl >= self.nominal_nl:
            self.empty = False
            self._clear("empty_reservoir")
        else:
            self.empty = True
            self.acc = Fraction(0)
            self._raise("empty_reservoir", self.t, "refilled below one stroke")
        if new_nl > self.low_threshold_nl:
            self._clear("low_reservoir")
        else:
            self._raise("low_reservoir", self.t, "refilled at or below the low-reservoir threshold")
        return Response(True, data={"withdrawn_ml": withdrawn / 1e6, "expected_ml": expected / 1e6,
                                    "discrepancy_ml": (withdrawn - expected) / 1e6})

    def _cmd_SetLowAlarm(self, c: SetLowAlarm) -> Response:
        self.profile.check_low_alarm(c.threshold, "threshold")
        self.low_threshold_nl = round(c.threshold.value * 1_000_000)
        if self.reservoir_estimate_nl <= self.low_threshold_nl and self.filled_nl > 0:
            self._raise("low_reservoir", self.t, "reservoir estimate at or below new threshold")
        elif self.reservoir_estimate_nl > self.low_threshold_nl:
            self._clear("low_reservoir")
        return Response(True)

    def _cmd_AcknowledgeAlarm(self, c: AcknowledgeAlarm) -> Response:
        if not self.alarms.acknowledge(c.kind, iso(self.t)):
            return Response(False, f"no unacknowledged active {c.kind} alarm")
        return Response(True)

    def _cmd_AlarmTest(self, c: AlarmTest) -> Response:
        return Response(True, data={"tones": ["single_tone", "two_tone"]})

    def _cmd_ReadStatus(self, c: ReadStatus) -> Response:
        return Response(True, data=self.status())

    def _cmd_ReadLog(self, c: ReadLog) -> Response:
        if c.page < 0 or c.page_size < 1:
            return Response(False, "page must be >= 0 and page_size >= 1")
        return Response(True, data={"entries": self.log.read(c.page, c.page_size),
                                    "pages": self.log.pages(c.page_size),
                                    "dropped": self.log.dropped})

    def _cmd_MriStart(self, c: MriStart) -> Response:
        if self.stalled:
            return Response(False, "already in an MRI")
        self.stalled = True
        self.recovery_until = None
        self._raise("motor_stall", self.t, "MRI: rotor stalled")
        return Response(True)

    def _cmd_MriEnd(self, c: MriEnd) -> Response:
        if not self.stalled:
            return Response(False, "no MRI in progress")
        self.stalled = False
        self.recovery_until = self.t + round(self.profile.mri_recovery_hours * 3600)
        return Response(True, data={"recovery_until": iso(self.recovery_until)})

    def _cmd_PocketFill(self, c: PocketFill) -> Response:
        nl = round(c.volume.value * 1_000_000)
        if nl <= 0 or nl > self.reservoir_true_nl:
            return Response(False, "a pocket fill takes more than 0 mL and at most what the "
                                   f"reservoir holds ({self.reservoir_true_nl / 1e6:g} mL)")
        self.reservoir_true_nl -= nl
        self.tissue_nl += nl
        self.tissue_mcg += nl * self.reservoir_conc / 1_000_000
        return Response(True, data={"pocket_mcg": nl * self.reservoir_conc / 1_000_000})

    def _cmd_PowerOnReset(self, c: PowerOnReset) -> Response:
        self.running = False
        self.bolus = None
        self.acc = Fraction(0)
        self._raise("memory_error", self.t, "power-on reset: infusion stopped until restarted")
        return Response(True)

    def _cmd_CatheterFault(self, c: CatheterFault) -> Response:
        if c.kind not in FAULTS:
            return Response(False, f"catheter fault must be one of {', '.join(FAULTS)}")
        length = self.catheter.length_cm
        if not (math.isfinite(c.position_cm) and 0.0 <= c.position_cm <= length):
            return Response(False, f"fault position must be 0 to {length:.4g} cm from the pump "
                                   f"connector (the implanted catheter length); got {c.position_cm}")
        if c.kind == "kink" and not (0.0 < c.fraction < 1.0):
            return Response(False, "a kink's fraction is the share of flow that still passes: "
                                   f"more than 0 and less than 1 (got {c.fraction}); use "
                                   "occlusion for none")
        if c.kind == "leak" and not (0.0 < c.fraction <= 1.0):
            return Response(False, "a leak's fraction is the share of flow lost to tissue: more "
                                   f"than 0, at most 1 (got {c.fraction})")
        self.catheter.set_fault(c.kind, c.position_cm, c.fraction)
        return Response(True)

    # ---- status ----------------------------------------------------------------------------
    def battery_days_left(self) -> float:
        if self.eos:
            return 0.0
        days = battery.projected_days(self.profile, self.battery_remaining_uah, self.daily_strokes())
        age_left = (self.born + self.profile.max_service_years * YEAR_S - self.t) / DAY_S
        return max(0.0, min(days, age_left))

    def status_report(self) -> dict[str, Any]:
        """The pump's status in the wire's vocabulary (``read_status`` adds the serial and the
        patient-bolus book): what the safety kernel's ``pump_state_from_status`` reads."""
        s = self.status()
        return {
            "profile": self.profile.name,
            "capacity_ml": self.profile.capacity.value,
            "time": s["time"],
            "pump_clock": (self.now + timedelta(seconds=self.clock_offset)).isoformat(),
            "state": s["state"],
            "running": self.running,
            "state_version": self.state_version,
            "reservoir_estimate_ml": s["reservoir_estimate_ml"],
            "reservoir_concentration_mcg_per_ml": s["reservoir_concentration"],
            "program": s["program"],
            "program_concentration_mcg_per_ml": self.program_conc if self.prescription else None,
            "bolus_running_until": iso(self.bolus[1]) if self.bolus else None,
            "low_alarm_ml": s["low_alarm_ml"],
            "tone": s["tone"],
            "alarms": s["alarms"],
            "battery_days_left": s["battery_days_left"],
            "eri_days": self.profile.eri_days,
            "path_volume_ml": self.catheter.volume_nl / 1e6,
            "internal_volume_ml": self.profile.internal_volume.value,
            "mri_resume": self.profile.mri_resume,
            "history_24h": self.recent_history(24.0),
        }

    def status(self) -> dict[str, Any]:
        return {
            "time": self.now.isoformat(),
            "state": self.state.value,
            "reservoir_ml": self.reservoir_true_nl / 1e6,
            "reservoir_estimate_ml": self.reservoir_estimate_nl / 1e6,
            "reservoir_concentration": self.reservoir_conc,
            "delivered_ml": self.delivered_nl / 1e6,
            "delivered_mcg": self.delivered_mcg,
            "tissue_ml": self.tissue_nl / 1e6,
            "strokes": self.strokes,
            "battery_days_left": self.battery_days_left(),
            "low_alarm_ml": self.low_threshold_nl / 1e6,
            "tone": self.alarms.tone(),
            "alarms": [a.to_dict() for a in self.alarms.history if a.active],
            "program": self.prescription.to_dict() if self.prescription else None,
        }

    def _sample(self) -> None:
        basal, _ = self._program_rate()
        self.history.append({"t": self.t, "reservoir_ml": self.reservoir_true_nl / 1e6,
                             "estimate_ml": self.reservoir_estimate_nl / 1e6,
                             "delivered_mcg": self.delivered_mcg, "tissue_mcg": self.tissue_mcg,
                             "rate_ml_per_day": float(basal) * self.nominal_nl * DAY_S / 1e6
                             if self._delivering() else 0.0})

    def _log(self, kind: str, data: dict[str, Any] | None = None,
             at: int | Fraction | None = None) -> None:
        self.log.append(iso(self.t if at is None else at), kind, data)

    # ---- persistence -----------------------------------------------------------------------
    def _journal(self, body: dict[str, Any], sync: bool) -> None:
        m = self.memory
        if m is None:
            return
        if not m.resumed:
            if not m.blank:
                raise MemoryWriteFailed("this memory holds a pump: restore from it first")
            self._snapshot(m)  # a new pump's first snapshot: the base of its journal
        reads = self.unjournaled_reads
        m.append({**body, **({"reads": reads} if reads else {}), "before": self.fingerprint()},
                 sync)
        self.unjournaled_reads = 0  # only once the record is written

    def _snapshot(self, m: MemoryPort) -> None:
        m.checkpoint(self.to_dict())
        self.unjournaled_reads = 0  # their charges are in the snapshot

    def _checkpoint_if_due(self) -> None:
        if self.memory is not None and self.memory.due():
            try:
                self._snapshot(self.memory)
            except MemoryWriteFailed:
                pass  # the journal still holds every input; the port retries later

    def checkpoint(self) -> None:
        """Write a snapshot now (start-up, clean shutdown); raises MemoryWriteFailed."""
        if self.memory is not None:
            self._snapshot(self.memory)

    def fingerprint(self) -> str:
        """A short digest of the state a journal record applies to: a replay that does not
        reproduce the live pump is caught at the first record where they part."""
        b = self.bolus
        text = (f"{self.t}|{self.clock_offset}|{self.strokes}|{self.acc}|{self.reservoir_true_nl}|"
                f"{self.reservoir_estimate_nl}|{self.reservoir_conc!r}|{self.delivered_nl}|"
                f"{self.tissue_nl}|{self.filled_nl}|{self.withdrawn_nl}|"
                f"{self.battery_used_uah!r}|{self.running}|{self.empty}|{self.stalled}|"
                f"{self.eos}|{self.recovery_until}|{self.awaiting_interrogation}|"
                f"{self.program_conc!r}|{self.program_started}|{self.low_threshold_nl}|"
                f"{b and (b[0], b[1], b[2])}|{self.log.head}|{self.log.next_seq}|"
                f"{len(self.alarms.history)}|{self.state_version}")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "profile": self.profile.name,
            "t": self.t, "born": self.born, "clock_offset": self.clock_offset,
            "true_stroke_nl": self.true_stroke_nl,
            "catheter": self.catheter.to_dict(),
            "reservoir_true_nl": self.reservoir_true_nl,
            "reservoir_estimate_nl": self.reservoir_estimate_nl,
            "reservoir_conc": self.reservoir_conc,
            "low_threshold_nl": self.low_threshold_nl,
            "prescription": self.prescription.to_dict() if self.prescription else None,
            "program_conc": self.program_conc, "program_started": self.program_started,
            "running": self.running, "empty": self.empty, "stalled": self.stalled,
            "recovery_until": self.recovery_until,
            "awaiting_interrogation": self.awaiting_interrogation, "eos": self.eos,
            "bolus": [str(self.bolus[0]), self.bolus[1], self.bolus[2]] if self.bolus else None,
            "acc": str(self.acc), "strokes": self.strokes,
            "battery_used_uah": self.battery_used_uah,
            "filled_nl": self.filled_nl, "withdrawn_nl": self.withdrawn_nl,
            "delivered_nl": self.delivered_nl, "delivered_mcg": self.delivered_mcg,
            "tissue_nl": self.tissue_nl, "tissue_mcg": self.tissue_mcg,
            "alarms": self.alarms.to_list(), "log": self.log.to_dict(),
            "state_version": self.state_version,
        }

    def _restore_from(self, d: dict[str, Any]) -> None:
        self.t, self.born, self.clock_offset = d["t"], d["born"], d["clock_offset"]
        self.true_stroke_nl = d["true_stroke_nl"]
        self.catheter = Catheter.from_dict(d["catheter"])
        self.reservoir_true_nl = d["reservoir_true_nl"]
        self.reservoir_estimate_nl = d["reservoir_estimate_nl"]
        self.reservoir_conc = d["reservoir_conc"]
        self.low_threshold_nl = d["low_threshold_nl"]
        self.prescription = parse_prescription(d["prescription"]) if d["prescription"] else None
        self.program_conc, self.program_started = d["program_conc"], d["program_started"]
        self.running, self.empty, self.stalled = d["running"], d["empty"], d["stalled"]
        self.recovery_until = d["recovery_until"]
        self.awaiting_interrogation, self.eos = d["awaiting_interrogation"], d["eos"]
        self.bolus = ((_frac(d["bolus"][0]), d["bolus"][1], bool(d["bolus"][2]))
                      if d["bolus"] else None)
        self.acc, self.strokes = _frac(d["acc"]), d["strokes"]
        self.battery_used_uah = d["battery_used_uah"]
        self.filled_nl, self.withdrawn_nl = d["filled_nl"], d["withdrawn_nl"]
        self.delivered_nl, self.delivered_mcg = d["delivered_nl"], d["delivered_mcg"]
        self.tissue_nl, self.tissue_mcg = d["tissue_nl"], d["tissue_mcg"]
        self.alarms = AlarmBook.from_list(d["alarms"])
        self.log = EventLog.from_dict(d["log"])
        self.state_version = int(d.get("state_version", 0))

    @classmethod
    def from_dict(cls, d: dict[str, Any], profile: PumpProfile | None = None,
                  memory: MemoryPort | None = None) -> PumpController:
        p = profile or get_pump(d["profile"])
        c = cls(p, to_datetime(d["t"]), memory=memory)
        c._restore_from(d)
        return c

    @classmethod
    def replayed(cls, recovery: Recovery, profile: PumpProfile | str) -> PumpController:
        """The state a recovery proves: its snapshot, then each journal record applied again,
        each checked against the fingerprint the live pump wrote. Pure: no memory attached.
        Records from the first one that does not reproduce are reported in ``recovery.damage``."""
        p = get_pump(profile) if isinstance(profile, str) else profile
        try:
            c = cls.from_dict(recovery.base, p)
        except (KeyError, TypeError, ValueError, OpenITBError) as exc:
            raise MemoryCorrupted(f"snapshot after record {recovery.base_seq} cannot be loaded "
                                  f"({exc})"[:400]) from None
        for i, rec in enumerate(recovery.records):
            c._charge_telemetry(rec.get("reads", 0))  # the reads before it (see ``read``)
            if rec["before"] != c.fingerprint():
                recovery.damage.append(
                    f"journal record {rec['seq']} does not replay onto the state before it "
                    f"(records {rec['seq']} to {recovery.records[-1]['seq']} are not applied)")
                del recovery.records[i:]
                break
            try:
                c._apply_record(rec)
            except BadCommandRecord as exc:
                recovery.damage.append(f"journal record {rec['seq']}: {exc} (records "
                                       f"{rec['seq']} to {recovery.records[-1]['seq']} are not "
                                       "applied)")
                del recovery.records[i:]
                break
        return c

    def _apply_record(self, rec: dict[str, Any]) -> None:
        op = rec["op"]
        if op == "advance":
            self.advance(to_datetime(rec["to"]))
        elif op == "command":
            command = decode_command(rec["command"])
            try:
                self.handle(command)
            except Exception:  # noqa: BLE001 - it raised live too, and changed nothing there
                pass
        elif op == "note":
            self._note(rec["kind"], rec["data"], rec.get("changes_state", False))
        elif op == "memory_alarm":
            self._raise("memory_error", self.t, rec["reason"])

    @classmethod
    def restore(cls, memory: MemoryPort, profile: PumpProfile | str,
                now: datetime | None = None) -> PumpController:
        """Power up from memory: the newest state its snapshot and journal prove, then a fresh
        snapshot. Damage found on the way (named files, lost records) raises the memory alarm
        and the damaged files are kept aside; the pump keeps its last known good state. With no
        good snapshot at all this raises MemoryUnrecoverable: never a silent factory reset.
        ``now`` is unused (kept for callers): the pump resumes at its own last time."""
        recovery = memory.recover()
        c = cls.replayed(recovery, profile)
        memory.resume(recovery)
        c.memory = memory
        if recovery.damage:
            c.memory_alarm("memory damaged; last known good state restored: "
                           + "; ".join(recovery.damage))
        c.checkpoint()
        return c


def _log_seconds(at: str) -> int:
    """The whole second of an event-log time (the history's clock)."""
    return to_seconds(datetime.fromisoformat(at))


def _history_data(command: Command) -> dict[str, Any]:
    """What the event log keeps of a command for the safety kernel's 24 h history."""
    if isinstance(command, Program):
        p = command.prescription
        return {"daily_mcg": p.daily_dose().value, "repeats": p.repeats_daily,
                "mode": p.mode.value}
    if isinstance(command, ClinicianBolus):
        return {"dose_mcg": command.dose.value, "by_patient": command.by_patient}
    return {}


def zero_error_pump(profile: PumpProfile | str, now: datetime, **kw: Any) -> PumpController:
    """A pump whose true stroke equals the nominal stroke (hand-worked scenarios)."""
    p = get_pump(profile) if isinstance(profile, str) else profile
    return PumpController(p, now, true_stroke_nl=p.stroke_volume_nl, **kw)


__all__ = ["PumpController", "zero_error_pump", "draw_true_stroke_nl", "to_seconds",
           "to_datetime"]
