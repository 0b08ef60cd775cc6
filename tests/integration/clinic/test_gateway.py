"""The clinic reaches pumps only through the PumpGateway port: a recording gateway swapped in
sees every pump operation of the use cases, in order (so a programmer-over-telemetry gateway can
replace the in-process one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from openitb.clinic import services
from openitb.clinic.facade import Clinic
from openitb.clinic.pumps import ControllerGateway

from .test_services import reviewed, DR, RN, T0, implanted


class Recording(ControllerGateway):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in ("manufacture", "interrogate", "advance_to", "program", "refill",
                    "volume_bolus", "clinician_bolus", "acknowledge", "mri"):
            calls = super().__getattribute__("calls")

            def wrapped(*a: Any, **kw: Any) -> Any:
                calls.append(name if name != "volume_bolus" else f"volume_bolus:{a[2]}")
                return attr(*a, **kw)
            return wrapped
        return attr


@pytest.fixture
def recording() -> Iterator[Recording]:
    rec = Recording()
    previous = services.GATEWAY
    services.set_gateway(rec)
    yield rec
    services.set_gateway(previous)


def test_use_cases_go_through_the_port(empty_clinic: Clinic, recording: Recording) -> None:
    pid = implanted(empty_clinic)
    assert recording.calls == ["manufacture", "refill", "program", "volume_bolus:priming"]
    recording.calls.clear()
    with empty_clinic.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=10))
    with empty_clinic.uow(RN) as u:
        reviewed(services.refill, u, pid, {"withdrawn_ml": 14, "volume_ml": 20, "concentration": 2000,
                                 "confirmed": True, "note": "checked the needle position"})
    assert recording.calls == ["advance_to", "interrogate", "refill", "interrogate", "program",
                               "volume_bolus:bridge", "interrogate"]
    recording.calls.clear()
    with empty_clinic.uow(DR) as u:
        services.record_mri(u, pid, {"minutes": 30})
    assert recording.calls == ["mri"]
