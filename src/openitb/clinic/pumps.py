"""The clinic's one port to the implanted pumps.

Every use case reaches a pump through :class:`PumpGateway`. :class:`ControllerGateway` drives the
pump controller directly and keeps its snapshot in the database row (``Pump.state``);
:class:`~openitb.clinic.telemetry_gateway.TelemetryPumpGateway` (the web app's default) talks to
the same snapshot through the programmer over telemetry, without touching the use cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from openitb.devices import get_pump
from openitb.errors import OpenITBError, RefusedOperation
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, to_datetime
from openitb.therapy.prescription import Prescription, parse_prescription
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters


class PumpRecord(Protocol):
    """What the gateway needs of a stored pump: its profile, serial and snapshot."""

    profile: str
    serial: str
    state: dict[str, Any]


@dataclass(frozen=True)
class PumpReading:
    """One interrogation: the pump's status and its whole alarm history."""

    status: dict[str, Any]
    alarms: list[dict[str, Any]]
    prescription: Prescription | None
    program_concentration: float
    pump_time: datetime
    data: dict[str, Any]


class PumpGateway(Protocol):
    def manufacture(self, record: PumpRecord, now: datetime, seed: int,
                    catheter_volume_ml: float) -> PumpReading: ...
    def interrogate(self, record: PumpRecord, now: datetime) -> PumpReading: ...
    def advance_to(self, record: PumpRecord, now: datetime) -> PumpReading: ...
    def program(self, record: PumpRecord, now: datetime, prescription: Prescription,
                concentration: McgPerMl, start: bool = False) -> PumpReading: ...
    def refill(self, record: PumpRecord, now: datetime, volume: Milliliters,
               concentration: McgPerMl) -> PumpReading: ...
    def volume_bolus(self, record: PumpRecord, now: datetime, kind: str, volume: Milliliters,
                     duration: Hours) -> PumpReading: ...
    def clinician_bolus(self, record: PumpRecord, now: datetime, dose: Micrograms,
                        duration: Hours) -> PumpReading: ...
    def acknowledge(self, record: PumpRecord, now: datetime, kind: str) -> PumpReading: ...
    def mri(self, record: PumpRecord, now: datetime, minutes: float) -> PumpReading: ...


class ControllerGateway:
    """The virtual pump in-process: load the snapshot, run to ``now``, apply, store it back."""

    def _load(self, record: PumpRecord, now: datetime) -> PumpController:
        c = PumpController.from_dict(record.state, get_pump(record.profile))
        if now > c.now:
            c.advance(now)
        return c

    def _store(self, record: PumpRecord, c: PumpController,
               data: dict[str, Any] | None = None) -> PumpReading:
        record.state = c.to_dict()
        return PumpReading(
            status=c.status(), alarms=c.alarms.to_list(), prescription=c.prescription,
            program_concentration=c.program_conc, pump_time=c.now, data=data or {})

    def _send(self, c: PumpController, command: cmd.Command) -> dict[str, Any]:
        resp = c.handle(command)
        if not resp.ok:
            raise RefusedOperation(f"the pump refused {type(command).__name__}: {resp.reason}",
                                   code="pump_refused")
        return resp.data

    def manufacture(self, record: PumpRecord, now: datetime, seed: int,
                    catheter_volume_ml: float) -> PumpReading:
        c = PumpController.manufacture(record.profile, now, np.random.default_rng(seed),
                                       catheter_volume_nl=round(catheter_volume_ml * 1e6))
        return self._store(record, c)

    def interrogate(self, record: PumpRecord, now: datetime) -> PumpReading:
        c = self._load(record, now)
        data = self._send(c, cmd.ReadStatus())
        return self._store(record, c, data)

    def advance_to(self, record: PumpRecord, now: datetime) -> PumpReading:
        return self._store(record, self._load(record, now))

    def program(self, record: PumpRecord, now: datetime, prescription: Prescription,
                concentration: McgPerMl, start: bool = False) -> PumpReading:
        c = self._load(record, now)
        data = self._send(c, cmd.Program(prescription, concentration))
        if start and not c.running:
            self._send(c, cmd.Start())
        return self._store(record, c, data)

    def refill(self, record: PumpRecord, now: datetime, volume: Milliliters,
               concentration: McgPerMl) -> PumpReading:
        c = self._load(record, now)
        data = self._send(c, cmd.Refill(volume, concentration))
        return self._store(record, c, data)

    def volume_bolus(self, record: PumpRecord, now: datetime, kind: str, volume: Milliliters,
                     duration: Hours) -> PumpReading:
        c = self._load(record, now)
        command: cmd.Command = (cmd.PrimingBolus(volume, duration) if kind == "priming"
                                else cmd.BridgeBolus(volume, duration))
        data = self._send(c, command)
        return self._store(record, c, data)

    def clinician_bolus(self, record: PumpRecord, now: datetime, dose: Micrograms,
                        duration: Hours) -> PumpReading:
        c = self._load(record, now)
        data = self._send(c, cmd.ClinicianBolus(dose, duration))
        return self._store(record, c, data)

    def acknowledge(self, record: PumpRecord, now: datetime, kind: str) -> PumpReading:
        c = self._load(record, now)
        data = self._send(c, cmd.AcknowledgeAlarm(kind))
        return self._store(record, c, data)

    def mri(self, record: PumpRecord, now: datetime, minutes: float) -> PumpReading:
        """The scan starts now and lasts ``minutes``: the rotor stalls, then recovers."""
        c = self._load(record, now)
        self._send(c, cmd.MriStart())
        c.advance(to_datetime(c.t + round(minutes * 60)))
        data = self._send(c, cmd.MriEnd())
        return self._store(record, c, data)


def reading_prescription(state: dict[str, Any]) -> Prescription | None:
    doc = state.get("prescription")
    try:
        return parse_prescription(doc) if doc else None
    except OpenITBError:
        return None
