"""The clinic's pump port driven through the clinician programmer over telemetry.

For each operation :class:`TelemetryPumpGateway` restores the patient's virtual pump (the
controller snapshot kept in ``Pump.state``), puts a :class:`PumpService` in front of it with the
pump's own role keys, opens a clinician session over the in-process transport (the same signed
frames as TCP, only without a socket), sends the commands through a programmer
:class:`PumpLink`, reads the pump back, compares, closes the session and stores the snapshot.

Keys: nothing is stored. Each pump's role keys are derived from one server secret and the pump's
serial, ``HMAC-SHA256(secret, "openitb-pump-key|" + serial + "|" + role)``, so the pump service
rebuilt for every operation holds the same keys as the clinic's programmer. The secret is
``OPENITB_TELEMETRY_SECRET`` (at least 16 bytes) or, if unset, 32 random bytes made once per
process (the pumps are rebuilt from their snapshots by this same process, so nothing else needs
it).

What the clinic sees comes over the link: the status of the read-back (``read_status``) and
each command's answer. Two things do not: the passing of time (``advance_to`` runs the pump to
the clinic's clock, as the implanted pump would on its own) and an MRI scan (an environment
event injected into the pump, not a command); both report the pump-side status without an
interrogation, since an interrogation would resume a pump waiting after a scan before the
post-MRI check. ``read_status`` carries only the alarms sounding now, so the alarm history the
inbox needs (raised and cleared since the last sync) is taken from the pump's stored history.

Readback: a program is compared field by field (:func:`program_differences` of the programmer
workflows), a refill's volume and concentration likewise (:func:`volume_differences`), a bolus
must show as running. A mismatch raises :class:`ReadbackMismatch`; the use case's transaction
then rolls back, so the stored snapshot stays as it was before the operation.

The programmer's :class:`Programmer` workflows are not called as a whole: they review the change
again for one clinician (origin, context, confirmation, override reason) while the clinic has
already reviewed it with its roles (only a physician beyond the recommended bounds), and the
port carries no origin or reason. The gateway uses their write-then-read-back parts instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from openitb.clinic.pumps import PumpReading, PumpRecord
from openitb.devices import get_pump
from openitb.errors import RefusedOperation
from openitb.programmer.link import PumpLink, ReadbackMismatch
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import program_differences, volume_differences
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role
from openitb.therapy.prescription import Prescription, parse_prescription
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters

SECRET_ENV = "OPENITB_TELEMETRY_SECRET"
MIN_SECRET_BYTES = 16


def _close(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and abs(float(a) - b) <= 1e-9 * max(1.0, abs(b))


def _q(value: float, unit: str) -> str:
    """A quantity as the wire wants it: exact float text and its unit."""
    return f"{value!r} {unit}"


class _Clock:
    """The service clock for one operation: the clinic's now (moved forward for an MRI)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Connection:
    controller: PumpController
    service: PumpService
    transport: InProcessTransport
    link: PumpLink
    clock: _Clock


@dataclass
class GatewayCounters:
    """Totals over every telemetry session the gateway opened (for tests and the bench)."""

    sessions: int = 0
    frames: int = 0
    commands_served: int = 0
    commands: list[str] = field(default_factory=list)


class TelemetryPumpGateway:
    """:class:`~openitb.clinic.pumps.PumpGateway` through the programmer over telemetry."""

    def __init__(self, secret: bytes | None = None, *, who: str = "clinic") -> None:
        if secret is None:
            env = os.environ.get(SECRET_ENV, "")
            secret = env.encode() if env else secrets.token_bytes(32)
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"{SECRET_ENV}: at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
        self._secret = secret
        self.who = who
        self.counters = GatewayCounters()
        self.last_record: SessionRecord | None = None

    # ---- keys and connections --------------------------------------------------------------
    def keys(self, serial: str) -> dict[Role, bytes]:
        if not serial:
            raise ValueError("a pump without a serial has no telemetry keys")
        return {role: hmac.new(self._secret, f"openitb-pump-key|{serial}|{role.value}".encode(),
                               hashlib.sha256).digest() for role in Role}

    def make_service(self, controller: PumpController, clock: _Clock, serial: str) -> PumpService:
        """The pump side of the link (a test may put a faulty pump here)."""
        return PumpService(controller, clock, serial=serial)

    def _open(self, record: PumpRecord, now: datetime) -> _Connection:
        controller = PumpController.from_dict(record.state, get_pump(record.profile))
        clock = _Clock(max(now, controller.now))
        service = self.make_service(controller, clock, record.serial)
        keys = self.keys(record.serial)
        transport = InProcessTransport(lambda: service.endpoint(keys))
        client = ProgrammerClient(transport, Role.CLINICIAN, keys[Role.CLINICIAN])
        rec = SessionRecord(who=self.who, role=Role.CLINICIAN.value, pump=record.serial,
                            started=clock.now.isoformat())
        service.advance()  # the pump runs on its own up to now, whether or not it is called
        return _Connection(controller, service, transport, PumpLink(client, rec, clock), clock)

    @contextmanager
    def _session(self, record: PumpRecord, now: datetime) -> Iterator[_Connection]:
        """One clinician session; closed (BYE) and counted whether the operation succeeds or
        not. Only :meth:`_finish` stores the snapshot, so a refused or mismatched operation
        leaves ``record.state`` as it was."""
        conn = self._open(record, now)
        try:
            yield conn
        finally:
            try:
                conn.link.client.close()
            except Exception:  # noqa: BLE001 - a failed BYE must not hide the real outcome
                pass
            conn.link.record.ended = conn.clock.now.isoformat()
            self.last_record = conn.link.record
            self.counters.sessions += 1
            self.counters.frames += conn.transport.frames
            self.counters.commands_served += conn.service.commands_served

    def _finish(self, conn: _Connection, record: PumpRecord, status: dict[str, Any],
                data: dict[str, Any] | None = None) -> PumpReading:
        record.state = conn.controller.to_dict()
        st = dict(status)
        # The clinic's key for what the reservoir holds (the controller's name for it).
        st["reservoir_concentration"] = st.get("reservoir_concentration_mcg_per_ml") or 0.0
        rx = st.get("program")
        return PumpReading(
            status=st, alarms=conn.controller.alarms.to_list(),
            prescription=parse_prescription(rx) if rx else None,
            program_concentration=float(st.get("program_concentration_mcg_per_ml") or 0.0),
            pump_time=datetime.fromisoformat(str(st["time"])), data=data or {})

    def _send(self, conn: _Connection, name: str, **args: Any) -> dict[str, Any]:
        self.counters.commands.append(name)
        return conn.link.send(name, **args)

    def _read(self, conn: _Connection) -> dict[str, Any]:
        self.counters.commands.append("read_status")
        return conn.link.read_status()

    @staticmethod
    def _check(conn: _Connection, action: str, diffs: list[str]) -> None:
        conn.link.record.change(conn.clock.now, action, {
            "readback": "mismatch" if diffs else "matches", "differences": diffs})
        if diffs:
            raise ReadbackMismatch(diffs)

    # ---- the port --------------------------------------------------------------------------
    def manufacture(self, record: PumpRecord, now: datetime, seed: int,
                    catheter_volume_ml: float) -> PumpReading:
        """A new pump from the factory (no link yet), then its first interrogation."""
        c = PumpController.manufacture(record.profile, now, np.random.default_rng(seed),
                                       catheter_volume_nl=round(catheter_volume_ml * 1e6))
        record.state = c.to_dict()
        return self.interrogate(record, now)

    def interrogate(self, record: PumpRecord, now: datetime) -> PumpReading:
        with self._session(record, now) as conn:
            status = self._read(conn)
            return self._finish(conn, record, status, status)

    def advance_to(self, record: PumpRecord, now: datetime) -> PumpReading:
        with self._session(record, now) as conn:
            return self._finish(conn, record, conn.service.status())

    def program(self, record: PumpRecord, now: datetime, prescription: Prescription,
                concentration: McgPerMl, start: bool = False) -> PumpReading:
        with self._session(record, now) as conn:
            data = self._send(conn, "program", prescription=prescription.to_dict(),
                              concentration=str(concentration))
            running = bool(conn.service.pump.running)
            if start and not running:
                self._send(conn, "start")
            status = self._read(conn)
            diffs = program_differences(status, prescription, concentration)
            if start and status.get("state") != "running":
                diffs.append(f"state: wrote start, the pump reports {status.get('state')}")
            self._check(conn, "program", diffs)
            return self._finish(conn, record, status, data)

    def refill(self, record: PumpRecord, now: datetime, volume: Milliliters,
               concentration: McgPerMl) -> PumpReading:
        with self._session(record, now) as conn:
            before = self._read(conn)
            data = self._send(conn, "refill", volume=_q(volume.value, "mL"),
                              concentration=str(concentration))
            status = self._read(conn)
            diffs = volume_differences(before, status, get_pump(record.profile), volume, "wrote")
            held = status.get("reservoir_concentration_mcg_per_ml")
            if not _close(held, concentration.value):
                diffs.append(f"reservoir concentration: wrote {concentration}, the pump reports "
                             f"{held} mcg/mL")
            self._check(conn, "refill", diffs)
            return self._finish(conn, record, status, data)

    def _bolus(self, conn: _Connection, record: PumpRecord, name: str,
               **args: Any) -> PumpReading:
        data = self._send(conn, name, **args)
        status = self._read(conn)
        self._check(conn, name, [] if status.get("bolus_running_until") else
                    [f"{name}: written, but the pump reports no bolus running"])
        return self._finish(conn, record, status, data)

    def volume_bolus(self, record: PumpRecord, now: datetime, kind: str, volume: Milliliters,
                     duration: Hours) -> PumpReading:
        if kind not in ("priming", "bridge"):
            raise ValueError(f"volume bolus kind {kind!r}: priming or bridge")
        with self._session(record, now) as conn:
            return self._bolus(conn, record, f"{kind}_bolus", volume=_q(volume.value, "mL"),
                               duration=_q(duration.value, "h"))

    def clinician_bolus(self, record: PumpRecord, now: datetime, dose: Micrograms,
                        duration: Hours) -> PumpReading:
        with self._session(record, now) as conn:
            return self._bolus(conn, record, "clinician_bolus", dose=_q(dose.value, "mcg"),
                               duration=_q(duration.value, "h"))

    def acknowledge(self, record: PumpRecord, now: datetime, kind: str) -> PumpReading:
        with self._session(record, now) as conn:
            data = self._send(conn, "acknowledge_alarm", kind=kind)
            return self._finish(conn, record, self._read(conn), data)

    def mri(self, record: PumpRecord, now: datetime, minutes: float) -> PumpReading:
        """The scan (an environment event, not a command) starts now and lasts ``minutes``."""
        with self._session(record, now) as conn:
            started = conn.service.inject(cmd.MriStart())
            if not started.get("ok"):
                raise RefusedOperation(f"MRI start: {started.get('reason')}", code="pump_refused")
            conn.clock.now = conn.clock.now + timedelta(seconds=round(minutes * 60))
            ended = conn.service.inject(cmd.MriEnd())
            if not ended.get("ok"):
                raise RefusedOperation(f"MRI end: {ended.get('reason')}", code="pump_refused")
            data = {k: v for k, v in ended.items() if k not in ("ok", "reason")}
            return self._finish(conn, record, conn.service.status(), data)
