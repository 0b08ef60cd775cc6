"""A programmer connected to a served pump through the in-process transport."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from openitb.drugs import Origin
from openitb.programmer.link import PumpLink
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import Programmer
from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import InMemory
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role
from openitb.therapy.prescription import Continuous
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = {Role.CLINICIAN: b"C" * 32, Role.PATIENT: b"P" * 32}


def yes(review: Any) -> bool:
    return True


def no(review: Any) -> bool:
    return False


def connect(service: PumpService, clock: ManualClock,
            dispatch: Callable[..., dict[str, Any]] | None = None
            ) -> tuple[Programmer, SessionRecord]:
    def factory() -> Any:
        ep = service.endpoint(KEYS)
        if dispatch is not None:
            ep._dispatch = dispatch
        return ep

    client = ProgrammerClient(InProcessTransport(factory), Role.CLINICIAN, KEYS[Role.CLINICIAN])
    record = SessionRecord("dr test", "clinician", "", T0.isoformat())
    return Programmer(PumpLink(client, record, clock)), record


def new_pump(profile: str = "itb-20") -> tuple[PumpService, ManualClock]:
    clock = ManualClock(T0)
    pump = zero_error_pump(profile, T0, memory=InMemory())
    return PumpService(pump, clock, serial="T-1"), clock


def implanted(dose: float = 400, conc: float = 500, volume: float = 20, profile: str = "itb-20"
              ) -> tuple[PumpService, ManualClock, Programmer, SessionRecord]:
    service, clock = new_pump(profile)
    prog, record = connect(service, clock)
    prog.implant(Continuous(McgPerDay(dose)), product="Gablofen", concentration=McgPerMl(conc),
                 volume=Milliliters(volume), confirm=yes, origin=Origin.SPINAL)
    return service, clock, prog, record
