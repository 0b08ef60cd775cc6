"""The pump service: telemetry commands (names + CBOR args) onto one pump controller.

``PumpService.dispatch(role, name, args)`` is the ``Dispatch`` a telemetry ``PumpEndpoint``
calls. For every command it runs the pump up to the service clock's time, validates every
argument (quantities as text with units), applies the controller command and returns plain data.
A refusal raises ``CommandError(code, reason)`` and changes nothing. The controller journals
each input to its memory port before applying it (write-ahead, see pump/memory.py); a failed
write is answered ``memory_write_failed`` and changes nothing. The patient bolus book is saved
through ``save_book``.

What goes over the wire is what a real pump knows: its reservoir *estimate*, not the simulated
true volume, and not what reached the patient or the tissue.

One lock serialises commands and environment events (MRI, resets) injected by a simulation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, iso, to_seconds
from openitb.pump.history import HistoryIndex
from openitb.pump.memory import MemoryWriteFailed
from openitb.pump.patient_bolus import PatientBolusBook, PatientBolusLimits, PatientBolusRefused
from openitb.pumpservice import args as a
from openitb.telemetry import cbor
from openitb.telemetry.session import DEFAULT_TIMEOUT_S, CommandError, PumpEndpoint, Role
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters

Clock = Callable[[], datetime]
Handler = Callable[[Role, dict[str, Any]], dict[str, Any]]

READS = frozenset({"read_status", "read_log", "read_history"})
ALARM_KINDS = ("low_reservoir", "eri", "empty_reservoir", "end_of_service", "motor_stall",
               "memory_error")


def _conc(value: Any, name: str) -> McgPerMl:
    c: McgPerMl = a.quantity(McgPerMl)(value, name)
    if c.value <= 0:
        raise a.bad(name, value, "a concentration above 0 mcg/mL")
    return c


def _positive(cls: Any) -> a.Parser:
    base = a.quantity(cls)

    def p(value: Any, name: str) -> Any:
        q = base(value, name)
        if q.value <= 0:
            raise a.bad(name, value, f"more than 0 {cls.symbol}")
        return q
    return p


class PumpService:
    def __init__(
        self,
        controller: PumpController,
        clock: Clock,
        *,
        serial: str = "",
        book: PatientBolusBook | None = None,
        save_book: Callable[[PatientBolusBook], None] | None = None,
    ) -> None:
        self.pump = controller
        self.clock = clock
        self.serial = serial
        self.book = book or PatientBolusBook()
        self._save_book = save_book or (lambda b: None)
        self.lock = threading.RLock()
        self.commands_served = 0
        self._history_wire: tuple[HistoryIndex, int, cbor.Encoded] | None = None
        q = a.quantity
        self._table: dict[str, tuple[dict[str, tuple[a.Parser, bool]], Handler]] = {
            "read_status": ({}, self._read_status),
            "read_history": ({"hours": (a.integer(1, 168), False)}, self._read_history),
            "read_log": ({"page": (a.integer(0, 10_000), False),
                          "page_size": (a.integer(1, 200), False),
                          "last": (a.integer(1, 200), False)}, self._read_log),
            "program": ({"prescription": (a.prescription, True),
                         "concentration": (_conc, True)}, self._program),
            "start": ({}, self._simple(cmd.Start())),
            "stop": ({}, self._simple(cmd.Stop())),
            "clinician_bolus": ({"dose": (_positive(Micrograms), True),
                                 "duration": (_positive(Hours), True)}, self._clinician_bolus),
            "priming_bolus": ({"volume": (_positive(Milliliters), True),
                               "duration": (_positive(Hours), True)},
                              self._volume_bolus(cmd.PrimingBolus)),
            "bridge_bolus": ({"volume": (_positive(Milliliters), True),
                              "duration": (_positive(Hours), True)},
                             self._volume_bolus(cmd.BridgeBolus)),
            "refill": ({"volume": (q(Milliliters), True),
                        "concentration": (_conc, True)}, self._refill),
            "set_low_alarm": ({"threshold": (q(Milliliters), True)}, self._set_low_alarm),
            "acknowledge_alarm": ({"kind": (a.choice(ALARM_KINDS), True)}, self._acknowledge),
            "alarm_test": ({}, self._simple(cmd.AlarmTest())),
            "set_clock": ({"time": (a.timestamp, True)}, self._set_clock),
            "set_patient_limits": ({"dose": (_positive(Micrograms), True),
                                    "duration": (_positive(Hours), True),
                                    "lockout": (_positive(Hours), True),
                                    "max_per_day": (a.integer(1, 24), True)},
                                   self._set_patient_limits),
            "disable_patient_bolus": ({}, self._disable_patient_bolus),
            "patient_bolus": ({}, self._patient_bolus),
        }

    # ---- entry points ----------------------------------------------------------------------
    @property
    def command_names(self) -> tuple[str, ...]:
        return tuple(self._table)

    def dispatch(self, role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        entry = self._table.get(name)
        if entry is None:
            raise CommandError("unknown_command", f"no command {name[:40]!r}; commands: "
                               f"{', '.join(sorted(self._table))}")
        schema, handler = entry
        if name == "patient_bolus" and role is not Role.PATIENT:
            raise CommandError("forbidden_role", "patient_bolus is for the patient therapy "
                               "manager; the clinician programmer gives clinician_bolus")
        expect: int | None = None
        if name not in READS and a.PRECONDITION in args:
            args = dict(args)
            expect = a.precondition(args.pop(a.PRECONDITION), a.PRECONDITION)
        checked = a.validate(args, schema, name)
        with self.lock:
            self.commands_served += 1
            try:
                # Catching up journals the clock's time (no fsync); the handler's command is
                # fsynced before it acts. Either failing changes nothing and is answered. The
                # precondition is checked after the catch-up (time alone never bumps the
                # version) and before anything of the write is journaled.
                self._catch_up()
                why = self.pump.check_version(expect)
                if why is not None:
                    raise CommandError("precondition_failed", why)
                result = handler(role, checked)
            except CommandError:
                raise
            except MemoryWriteFailed as exc:
                raise CommandError("memory_write_failed", f"{name} was not carried out: the "
                                   f"pump could not store it ({exc})"[:400]) from None
            except Exception as exc:  # a fault in the pump: answer, never drop the link
                raise CommandError("internal_error", f"{name} failed inside the pump "
                                   f"({type(exc).__name__}); interrogate before continuing"
                                   ) from None
            if name not in READS:
                # The writer chains its next precondition on this (one write, one version).
                result = {**result, "state_version": self.pump.state_version}
            return result

    def inject(self, event: cmd.Command) -> dict[str, Any]:
        """An environment event (MRI start/end, power-on reset, catheter fault) at clock time."""
        with self.lock:
            self._catch_up()
            r = self.pump.handle(event)
            return {"ok": r.ok, "reason": r.reason, **r.data}

    def advance(self) -> None:
        with self.lock:
            self._catch_up()

    def endpoint(self, keys: Mapping[Role, bytes], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 monotonic: Callable[[], float] = time.monotonic) -> PumpEndpoint:
        return PumpEndpoint(dict(keys), self._wire_dispatch, monotonic, timeout_s=timeout_s)

    def _wire_dispatch(self, role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """``dispatch`` for the link: the same result, with a read_status's 24 h history encoded
        once for as long as it stays the same answer (most reads: it changes with a write or
        a second of time), spliced into each reply's bytes unchanged (telemetry/cbor.py)."""
        with self.lock:  # the history answer and its encoding are paired under the same lock
            result = self.dispatch(role, name, args)
            if name != "read_status":
                return result
            index = self.pump.history_index
            kept = self._history_wire
            if kept is None or kept[0] is not index or kept[1] != index.answers:
                kept = (index, index.answers, cbor.Encoded(result["history_24h"]))
                self._history_wire = kept
            return {**result, "history_24h": kept[2]}

    # ---- helpers ---------------------------------------------------------------------------
    def _catch_up(self) -> None:
        """Run the pump to the clock's time. The controller journals the target without an
        fsync: a replay reproduces this exact path, and a power loss only loses time, which the
        clock gives back."""
        now = self.clock()
        if to_seconds(now) > self.pump.t:
            self.pump.advance(now)

    def checkpoint(self) -> None:
        """A fresh snapshot (clean shutdown): the next start replays nothing."""
        with self.lock:
            self.pump.checkpoint()

    def _apply(self, command: cmd.Command) -> dict[str, Any]:
        r = self.pump.handle(command)
        if not r.ok:
            raise CommandError("refused", r.reason)
        return dict(r.data)

    def _simple(self, command: cmd.Command) -> Handler:
        return lambda role, args: self._apply(command)

    def _log(self, kind: str, data: dict[str, Any], *, changes_state: bool = False) -> None:
        # Journaled (fsynced) before it is logged; a book change bumps the state version.
        self.pump.note(kind, data, changes_state=changes_state)

    # ---- handlers --------------------------------------------------------------------------
    def _read_status(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        # An interrogation (resumes a pump waiting after an MRI); the status is computed once,
        # after the read's effects and its radio charge, as the reply always was.
        resumed = self.pump.awaiting_interrogation
        self.pump.read(cmd.ReadStatus(), lambda: None)
        return self.status(resumed_after_mri=resumed)

    def status(self, *, resumed_after_mri: bool = False) -> dict[str, Any]:
        """The wire status: the controller's ``status_report`` (one vocabulary, with the state
        version and the 24 h history) plus the serial and the patient-bolus book."""
        p = self.pump
        now_s = p.t
        nxt = self.book.next_allowed(now_s)
        return {
            "serial": self.serial,
            **p.status_report(),
            "resumed_after_mri": resumed_after_mri,
            "patient_bolus": {
                "limits": self.book.limits.to_dict() if self.book.limits else None,
                "used_today": self.book.used_today(now_s),
                "next_allowed": iso(nxt) if nxt is not None else None,
            },
        }

    def _read_history(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        """Programs and boluses of the last ``hours`` (1 to 168), at most 48 entries."""
        return self.pump.recent_history(float(args.get("hours", 24)))

    def _read_log(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        log = self.pump.log
        if "last" in args:
            entries = [dict(e) for e in log.entries[-args["last"]:]]
            return {"entries": entries, "dropped": log.dropped}
        return self._apply(cmd.ReadLog(args.get("page", 0), args.get("page_size", 50)))

    def _program(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        held = self.pump.reservoir_conc
        conc = args["concentration"].value
        if self.pump.reservoir_estimate_nl > 0 and abs(held - conc) > 1e-9 * max(1.0, held):
            # A rate computed for one concentration while the reservoir holds another is a dose
            # error by the ratio of the two.
            raise CommandError("concentration_mismatch", f"program concentration {conc:g} mcg/mL"
                               f" differs from the reservoir's {held:g} mcg/mL; program with the"
                               " concentration in the pump (refill first to change it)")
        out = self._apply(cmd.Program(args["prescription"], args["concentration"]))
        return {"program": args["prescription"].to_dict(), **out}

    def _clinician_bolus(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        return self._apply(cmd.ClinicianBolus(args["dose"], args["duration"]))

    def _volume_bolus(self, kind: type[cmd.PrimingBolus] | type[cmd.BridgeBolus]) -> Handler:
        return lambda role, args: self._apply(kind(args["volume"], args["duration"]))

    def _refill(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        expected = self.pump.reservoir_estimate_nl / 1e6
        self._apply(cmd.Refill(args["volume"], args["concentration"]))
        # The pump does not know what was withdrawn: the clinician measures it.
        return {"expected_ml": expected, "volume_ml": args["volume"].value,
                "concentration_mcg_per_ml": args["concentration"].value}

    def _set_low_alarm(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        return self._apply(cmd.SetLowAlarm(args["threshold"]))

    def _acknowledge(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        return self._apply(cmd.AcknowledgeAlarm(args["kind"]))

    def _set_clock(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        return self._apply(cmd.SetClock(args["time"]))

    def _set_patient_limits(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        try:
            limits = PatientBolusLimits(args["dose"].value, round(args["duration"].value * 3600),
                                        round(args["lockout"].value * 3600), args["max_per_day"])
        except ValueError as exc:
            raise CommandError("bad_argument", str(exc)) from None
        self._change_book(PatientBolusBook(limits, list(self.book.activations)),
                          "patient_limits_set", limits.to_dict())
        return {"limits": limits.to_dict()}

    def _disable_patient_bolus(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        self._change_book(PatientBolusBook(None, list(self.book.activations)),
                          "patient_bolus_disabled", {})
        return {"limits": None}

    def _change_book(self, book: PatientBolusBook, kind: str, data: dict[str, Any]) -> None:
        """Save the book, then log it (a write: the pump's state version moves with the log
        entry, journaled together); if the log entry cannot be stored, put the old book back,
        so that nothing answered as failed stays done."""
        old = self.book
        self._save_book(book)
        self.book = book
        try:
            self._log(kind, data, changes_state=True)
        except MemoryWriteFailed:
            self.book = old
            self._save_book(old)
            raise

    def _patient_bolus(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        now_s = self.pump.t
        try:
            limits = self.book.check(now_s)
        except PatientBolusRefused as exc:
            when = iso(exc.next_allowed_s) if exc.next_allowed_s is not None else None
            self._log("patient_bolus_refused", {"code": exc.code, "next_allowed": when})
            raise CommandError(exc.code, exc.reason + (f"; next allowed at {when}" if when else "")
                               ) from None
        # Count the activation before giving it: a crash in between loses a bolus, never a limit.
        self.book.record(now_s)
        self._save_book(self.book)
        try:
            r = self.pump.handle(cmd.ClinicianBolus(Micrograms(limits.dose_mcg),
                                                    Hours(limits.duration_s / 3600),
                                                    by_patient=True))
        except MemoryWriteFailed:
            r = None
        if r is None or not r.ok:
            self.book.forget(now_s)
            self._save_book(self.book)
            if r is None:
                raise MemoryWriteFailed("the bolus could not be stored; it was not given")
            raise CommandError("refused", r.reason)
        self._log("patient_bolus", {"dose_mcg": limits.dose_mcg})
        after = self.book.next_allowed(now_s)
        assert after is not None
        return {"dose_mcg": limits.dose_mcg, "ends_at": r.data.get("ends_at"),
                "used_today": self.book.used_today(now_s), "max_per_day": limits.max_per_day,
                "next_allowed": iso(after)}
