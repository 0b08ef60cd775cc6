"""The clinic's one port to the implanted pumps.

A use case opens ONE session to a pump (:meth:`PumpGateway.session`), reads it, writes what was
reviewed and reads it back, all over one programmer :class:`~openitb.programmer.link.PumpLink`
(so the programmer's workflows drive the pump, and a use case can hand the link to them). The
snapshot of the virtual pump (``Pump.state``) is stored back only when the use case calls
:meth:`PumpSession.commit` after a successful write: a review only reads, so it neither stores a
snapshot nor bumps the pump row's version.

Two gateways share this engine and differ only in the client under the link:
:class:`ControllerGateway` dispatches each command straight to the pump service (no frames; for
tests and benchmarks), :class:`~openitb.clinic.telemetry_gateway.TelemetryPumpGateway` (the web
app's default) sends signed frames through a clinician telemetry session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import numpy as np

from openitb.devices import get_pump
from openitb.errors import OpenITBError, RefusedOperation
from openitb.programmer.link import PumpLink, ReadbackMismatch
from openitb.programmer.record import SessionRecord
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.pump.status import PumpStatus, parse_pump_status
from openitb.pumpservice.service import PumpService
from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.session import CommandError, Role
from openitb.therapy.prescription import Prescription, parse_prescription


class PumpRecord(Protocol):
    """What the gateway needs of a stored pump: its profile, serial and snapshot."""

    profile: str
    serial: str
    state: dict[str, Any]


@dataclass(frozen=True)
class PumpReading:
    """One interrogation: the pump's status (wire names) and its whole alarm history."""

    status: dict[str, Any]
    alarms: list[dict[str, Any]]
    prescription: Prescription | None
    program_concentration: float
    pump_time: datetime
    data: dict[str, Any]

    @property
    def pump_status(self) -> PumpStatus:
        """The pump's status as the one typed vocabulary (controller, wire, kernel, clinic)."""
        return parse_pump_status(self.status.get("state"))

    @property
    def reservoir_concentration(self) -> float:
        return float(self.status.get("reservoir_concentration_mcg_per_ml") or 0.0)


@dataclass
class GatewayCounters:
    """Totals over every session a gateway opened (for tests and the bench)."""

    sessions: int = 0
    frames: int = 0
    commands_served: int = 0
    commands: list[str] = field(default_factory=list)


class Clock:
    """The service clock for one session: the clinic's now (moved forward for an MRI)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _CountingClient:
    """Wraps the link's client so that every command, whoever sends it, is counted."""

    def __init__(self, inner: Any, counters: GatewayCounters) -> None:
        self.inner = inner
        self.counters = counters

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        self.counters.commands.append(name)
        result: dict[str, Any] = self.inner.command(name, **args)
        return result

    def close(self) -> None:
        self.inner.close()


class DirectClient:
    """The programmer client without frames: each command is dispatched to the pump service
    as the clinician role (refusals raised as the same TelemetryError)."""

    def __init__(self, service: PumpService) -> None:
        self.service = service

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        try:
            return self.service.dispatch(Role.CLINICIAN, name, args)
        except CommandError as exc:
            raise TelemetryError(exc.code, exc.reason) from None

    def close(self) -> None:
        pass


class PumpSession:
    """One use case's session to one pump."""

    def __init__(self, record: PumpRecord, controller: PumpController, service: PumpService,
                 link: PumpLink, clock: Clock) -> None:
        self.record = record
        self.controller = controller
        self.service = service
        self.link = link
        self.clock = clock
        self.committed = False

    @property
    def last_status(self) -> dict[str, Any] | None:
        """The last status read over the link (by the use case or a programmer workflow)."""
        return self.link.last_status

    # ---- commands ----------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        return self.link.read_status()

    def send(self, name: str, **args: Any) -> dict[str, Any]:
        return self.link.send(name, **args)

    def inject(self, event: cmd.Command) -> dict[str, Any]:
        """An environment event (MRI), not a command over the link."""
        result = self.service.inject(event)
        if not result.get("ok"):
            raise RefusedOperation(f"{type(event).__name__}: {result.get('reason')}",
                                   code="pump_refused")
        return {k: v for k, v in result.items() if k not in ("ok", "reason")}

    def check(self, action: str, differences: list[str]) -> None:
        self.link.record.change(self.clock.now, action, {
            "readback": "mismatch" if differences else "matches", "differences": differences})
        if differences:
            raise ReadbackMismatch(differences)

    # ---- results -------------------------------------------------------------------------------
    def commit(self) -> None:
        """Store the pump's snapshot in the record: only after a successful write."""
        self.record.state = self.controller.to_dict()
        self.committed = True

    def reading(self, status: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None) -> PumpReading:
        st = dict(status if status is not None else (self.last_status or self.service.status()))
        rx = st.get("program")
        return PumpReading(
            status=st, alarms=self.controller.alarms.to_list(),
            prescription=parse_prescription(rx) if rx else None,
            program_concentration=float(st.get("program_concentration_mcg_per_ml") or 0.0),
            pump_time=datetime.fromisoformat(str(st["time"])), data=data or {})


class PumpGateway:
    """Opens sessions to the pumps kept as snapshots in the clinic's rows."""

    who = "clinic"

    def __init__(self) -> None:
        self.counters = GatewayCounters()
        self.last_record: SessionRecord | None = None

    def make_service(self, controller: PumpController, clock: Clock, serial: str) -> PumpService:
        """The pump side of the link (a test may put a faulty pump here)."""
        return PumpService(controller, clock, serial=serial)

    def _client(self, service: PumpService, serial: str) -> tuple[Any, Callable[[], int]]:
        """The client under the link and a function counting the frames it carried."""
        return DirectClient(service), lambda: 0

    @contextmanager
    def session(self, record: PumpRecord, now: datetime) -> Iterator[PumpSession]:
        """One clinician session, closed and counted whether the use case succeeds or not."""
        controller = PumpController.from_dict(record.state, get_pump(record.profile))
        clock = Clock(max(now, controller.now))
        service = self.make_service(controller, clock, record.serial)
        client, frames = self._client(service, record.serial)
        rec = SessionRecord(who=self.who, role=Role.CLINICIAN.value, pump=record.serial,
                            started=clock.now.isoformat())
        link = PumpLink(cast(ProgrammerClient, _CountingClient(client, self.counters)), rec, clock)
        service.advance()  # the pump runs on its own up to now, whether or not it is called
        served = service.commands_served
        s = PumpSession(record, controller, service, link, clock)
        try:
            yield s
        finally:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a failed BYE must not hide the real outcome
                pass
            rec.ended = clock.now.isoformat()
            self.last_record = rec
            self.counters.sessions += 1
            self.counters.frames += frames()
            self.counters.commands_served += service.commands_served - served

    # ---- operations without a use-case session -------------------------------------------------
    def manufacture(self, record: PumpRecord, now: datetime, seed: int,
                    catheter_volume_ml: float) -> None:
        """A new pump from the factory (no link yet)."""
        c = PumpController.manufacture(record.profile, now, np.random.default_rng(seed),
                                       catheter_volume_nl=round(catheter_volume_ml * 1e6))
        record.state = c.to_dict()

    def advance_to(self, record: PumpRecord, now: datetime) -> PumpReading:
        """The passing of time: the pump runs to ``now`` on its own (no command, no session)."""
        controller = PumpController.from_dict(record.state, get_pump(record.profile))
        clock = Clock(max(now, controller.now))
        service = self.make_service(controller, clock, record.serial)
        service.advance()
        record.state = controller.to_dict()
        st = service.status()
        rx = st.get("program")
        return PumpReading(st, controller.alarms.to_list(),
                           parse_prescription(rx) if rx else None,
                           float(st.get("program_concentration_mcg_per_ml") or 0.0),
                           datetime.fromisoformat(str(st["time"])), {})

    def mri(self, record: PumpRecord, now: datetime, minutes: float) -> PumpReading:
        """The scan (an environment event, not a command) starts now and lasts ``minutes``;
        no interrogation, since one would resume a pump waiting for the post-MRI check."""
        with self.session(record, now) as s:
            s.inject(cmd.MriStart())
            s.clock.now = s.clock.now + timedelta(seconds=round(minutes * 60))
            data = s.inject(cmd.MriEnd())
            s.commit()
            return s.reading(s.service.status(), data)


class ControllerGateway(PumpGateway):
    """The pump service in-process, commands dispatched without telemetry frames."""


def reading_prescription(state: dict[str, Any]) -> Prescription | None:
    doc = state.get("prescription")
    try:
        return parse_prescription(doc) if doc else None
    except OpenITBError:
        return None
