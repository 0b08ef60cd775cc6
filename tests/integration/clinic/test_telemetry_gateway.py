"""The clinic's default pump port: the programmer over telemetry. Frames really flow (the pump
service counts the commands it served), each pump has its own keys, and a read-back that
differs from what was written surfaces as a clinic error with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from openitb.clinic import queries, services
from openitb.clinic.facade import Clinic
from openitb.clinic.pumps import ControllerGateway
from openitb.clinic.telemetry_gateway import TelemetryPumpGateway, _Clock
from openitb.errors import RefusedOperation
from openitb.programmer.link import ReadbackMismatch
from openitb.pump.controller import PumpController
from openitb.pumpservice.service import PumpService
from openitb.telemetry.session import Role

from .test_services import DR, RN, T0, implanted, reviewed

SECRET = b"test-secret-for-the-clinic-pumps"


@pytest.fixture
def gateway(empty_clinic: Clinic) -> Iterator[TelemetryPumpGateway]:
    """The clinic built with this gateway (passed in, no module global)."""
    gw = TelemetryPumpGateway(SECRET)
    empty_clinic.gateway = gw
    yield gw


def test_the_clinic_default_is_the_telemetry_gateway(tmp_path: Any) -> None:
    from openitb.store.db import make_engine

    clinic = Clinic(make_engine(f"sqlite:///{tmp_path / 'default.db'}"))
    assert isinstance(clinic.gateway, TelemetryPumpGateway)
    with clinic.uow(DR) as u:
        assert u.gateway is clinic.gateway
    clinic.engine.dispose()


def test_program_change_is_one_session_served_by_the_pump_over_frames(
        empty_clinic: Clinic, gateway: TelemetryPumpGateway) -> None:
    pid = implanted(empty_clinic)
    # implant: its review reads the new pump (one session), the confirm is one session
    assert gateway.counters.sessions == 2
    assert gateway.counters.commands == ["read_status", "read_status", "refill", "program",
                                         "start", "priming_bolus", "read_status"]
    before = (gateway.counters.commands_served, gateway.counters.frames,
              gateway.counters.sessions)
    gateway.counters.commands.clear()
    with empty_clinic.uow(RN) as u:
        review = services.program_review(u, pid, {"dose_per_day": 330,
                                                  "context": "maintenance"})
    assert gateway.counters.commands == ["read_status"]
    gateway.counters.commands.clear()
    with empty_clinic.uow(RN) as u:
        services.program(u, pid, {"dose_per_day": 330, "context": "maintenance",
                                  "confirmed": True, "review_token": review.token})
    # the confirm reads (the review recomputed), writes, reads back: one session
    assert gateway.counters.commands == ["read_status", "program", "read_status"]
    assert gateway.counters.sessions == before[2] + 2
    assert gateway.counters.commands_served == before[0] + 4
    # per session HELLO and BYE, one frame per command: (1 + 2) + (3 + 2)
    assert gateway.counters.frames == before[1] + 8
    record = gateway.last_record
    assert record is not None and record.role == "clinician" and record.pump == "SN-T1"
    assert record.changes[-1]["readback"] == "matches"
    with empty_clinic.uow(DR) as u:
        pump = queries.patient_record(u, pid)["pump"]
        assert pump.dose_per_day == 330
        assert pump.state["prescription"]["dose"].startswith("330")


def test_the_same_use_cases_give_the_same_pump_as_the_direct_gateway(
        tmp_path: Any, gateway: TelemetryPumpGateway) -> None:
    from openitb.store.db import make_engine

    def run(gw: Any, name: str) -> tuple[float, float, Any]:
        clinic = Clinic(make_engine(f"sqlite:///{tmp_path / name}"), gateway=gw)
        pid = implanted(clinic)
        with clinic.uow(RN) as u:
            services.move_clock(u, T0 + timedelta(days=10))
        with clinic.uow(RN) as u:
            reviewed(services.refill, u, pid, {"withdrawn_ml": 14, "volume_ml": 20, "concentration": 2000,
                                     "confirmed": True, "note": "checked the needle position"})
        with clinic.uow(DR) as u:
            pump = queries.patient_record(u, pid)["pump"]
            out = (pump.reservoir_ml, pump.concentration, pump.refill_by)
        clinic.engine.dispose()
        return out

    direct = run(ControllerGateway(), "direct.db")
    over_link = run(gateway, "telemetry.db")
    assert over_link[1] == direct[1] == 2000
    assert over_link[2] == direct[2]
    # reads draw on the battery, but the reservoir moves the same
    assert abs(over_link[0] - direct[0]) < 1e-6


def test_keys_are_per_pump_and_a_wrong_key_is_refused(empty_clinic: Clinic,
                                                      gateway: TelemetryPumpGateway) -> None:
    a, b = gateway.keys("SN-A"), gateway.keys("SN-B")
    assert a[Role.CLINICIAN] != b[Role.CLINICIAN] and a[Role.CLINICIAN] != a[Role.PATIENT]
    assert TelemetryPumpGateway(SECRET).keys("SN-A") == a
    assert TelemetryPumpGateway(b"another-secret-of-the-clinic").keys("SN-A") != a
    with pytest.raises(ValueError):
        TelemetryPumpGateway(b"short")

    class WrongKeys(TelemetryPumpGateway):
        def make_service(self, controller: PumpController, clock: _Clock,
                         serial: str) -> PumpService:
            svc = super().make_service(controller, clock, serial)
            other = self.keys("SN-OTHER")
            svc.endpoint = (lambda keys, **kw: PumpService.endpoint(svc, other))  # type: ignore[method-assign]
            return svc

    pid = implanted(empty_clinic)
    empty_clinic.gateway = WrongKeys(SECRET)
    with pytest.raises(RefusedOperation) as e, empty_clinic.uow(RN) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 330, "context": "maintenance",
                                  "confirmed": True})
    assert e.value.code == "bad_mac"


class MisreportingService(PumpService):
    """A faulty pump: it stores the program it is sent but reports a different dose back."""

    written = False

    def _program(self, role: Role, args: dict[str, Any]) -> dict[str, Any]:
        self.written = True
        return super()._program(role, args)

    def status(self, *, resumed_after_mri: bool = False) -> dict[str, Any]:
        s = super().status(resumed_after_mri=resumed_after_mri)
        if self.written and s.get("program"):
            s["program"] = {**s["program"], "dose": "1 mcg/day"}
        return s


class Misreporting(TelemetryPumpGateway):
    def make_service(self, controller: PumpController, clock: _Clock, serial: str) -> PumpService:
        return MisreportingService(controller, clock, serial=serial)


def test_a_readback_mismatch_is_a_clinic_error_and_nothing_is_stored(
        empty_clinic: Clinic, gateway: TelemetryPumpGateway) -> None:
    pid = implanted(empty_clinic)
    with empty_clinic.uow(DR) as u:
        state_before = dict(queries.patient_record(u, pid)["pump"].state)
    empty_clinic.gateway = Misreporting(SECRET)
    with pytest.raises(ReadbackMismatch) as e, empty_clinic.uow(RN) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 330, "context": "maintenance",
                                  "confirmed": True})
    assert e.value.code == "readback_mismatch"
    assert any(d.startswith("program.dose") for d in e.value.differences)
    empty_clinic.gateway = gateway
    with empty_clinic.uow(DR) as u:
        rec = queries.patient_record(u, pid)
        assert rec["pump"].dose_per_day == 300  # the transaction rolled back
        assert rec["pump"].state == state_before
        assert not any(v.kind == "program" for v in rec["visits"])


def test_a_pump_refusal_carries_the_wire_code(empty_clinic: Clinic,
                                              gateway: TelemetryPumpGateway) -> None:
    pid = implanted(empty_clinic)
    with empty_clinic.uow(DR) as u:
        pump = queries.patient_record(u, pid)["pump"]
        state = dict(pump.state)
        sessions = gateway.counters.sessions
        with pytest.raises(RefusedOperation) as e, gateway.session(pump, u.now) as s:
            s.send("acknowledge_alarm", kind="eri")  # no such alarm sounding
        assert e.value.code == "refused"
        assert pump.state == state  # nothing stored
        assert gateway.counters.sessions == sessions + 1  # the session was closed and counted
        assert gateway.last_record is not None
        assert gateway.last_record.refusals[-1]["action"] == "acknowledge_alarm"
        u.session.rollback()
