"""Shared set-up: a pump behind the service, reached through the in-process transport."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import FileMemory, InMemory
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = {Role.CLINICIAN: b"C" * 32, Role.PATIENT: b"P" * 32}


def make_service(profile: str = "itb-20", directory: Path | None = None
                 ) -> tuple[PumpService, ManualClock]:
    clock = ManualClock(T0)
    memory = FileMemory(directory) if directory is not None else InMemory()
    pump = zero_error_pump(profile, T0, memory=memory)
    return PumpService(pump, clock, serial="T-1"), clock


def client(service: PumpService, role: Role = Role.CLINICIAN) -> ProgrammerClient:
    c = ProgrammerClient(InProcessTransport(lambda: service.endpoint(KEYS)), role, KEYS[role])
    c.open()
    return c


def set_up_running(service: PumpService, dose: str = "400 mcg/day",
                   concentration: str = "500 mcg/mL", volume: str = "20 mL") -> ProgrammerClient:
    c = client(service)
    c.command("refill", volume=volume, concentration=concentration)
    c.command("program", prescription={"mode": "continuous", "dose": dose},
              concentration=concentration)
    c.command("start")
    return c
