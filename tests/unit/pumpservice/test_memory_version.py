"""The kernel's precondition and the pump's write-ahead memory together: a restored pump has the
same state version and 24 h history as the live one, a write refused by its precondition leaves
no trace in the journal, and a patient-bolus book change bumps the version on replay too."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from openitb.pump.controller import PumpController
from openitb.pump.memory import JOURNAL, FileMemory
from openitb.telemetry.session import CommandError, Role

from .helpers import make_service

RX = {"mode": "continuous", "dose": "100 mcg/day"}


def _journal(directory: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (directory / JOURNAL).read_text().splitlines() if x]


def test_a_restored_pump_has_the_live_state_version_and_history(tmp_path: Path) -> None:
    service, clock = make_service(directory=tmp_path)
    w = service.dispatch
    v = w(Role.CLINICIAN, "refill", {"volume": "20 mL", "concentration": "500 mcg/mL",
                                     "expect_version": service.pump.state_version}
          )["state_version"]
    v = w(Role.CLINICIAN, "program", {"prescription": RX, "concentration": "500 mcg/mL",
                                      "expect_version": v})["state_version"]
    v = w(Role.CLINICIAN, "start", {"expect_version": v})["state_version"]
    clock.advance(timedelta(hours=2))
    v = w(Role.CLINICIAN, "set_patient_limits",
          {"dose": "10 mcg", "duration": "0.5 h", "lockout": "3 h", "max_per_day": 4,
           "expect_version": v})["state_version"]
    clock.advance(timedelta(minutes=10))
    w(Role.PATIENT, "patient_bolus", {})
    clock.advance(timedelta(minutes=10))
    with pytest.raises(CommandError):  # within the lockout: refused, logged, no version change
        w(Role.PATIENT, "patient_bolus", {})
    w(Role.CLINICIAN, "read_status", {})
    live = service.pump
    assert live.state_version == 5  # refill, program, start, limits, bolus; refusals do not count
    live.memory.close()  # type: ignore[union-attr]

    restored = PumpController.restore(FileMemory(tmp_path), "itb-20")
    assert restored.alarms.active("memory_error") is None  # every fingerprint matched
    assert restored.state_version == live.state_version
    assert restored.recent_history(24.0) == live.recent_history(24.0)
    kinds = [e["kind"] for e in restored.recent_history(24.0)["entries"]]
    assert kinds == ["program", "start", "bolus"]
    assert restored.recent_history(24.0)["entries"][-1]["by_patient"] is True


def test_a_write_refused_by_its_precondition_is_not_journaled(tmp_path: Path) -> None:
    service, clock = make_service(directory=tmp_path)
    v = service.pump.state_version
    service.dispatch(Role.CLINICIAN, "refill", {"volume": "20 mL", "concentration": "500 mcg/mL",
                                                "expect_version": v})
    before = service.pump.to_dict()
    records = _journal(tmp_path)
    for name, args in (("program", {"prescription": RX, "concentration": "500 mcg/mL"}),
                       ("set_patient_limits", {"dose": "10 mcg", "duration": "0.5 h",
                                               "lockout": "3 h", "max_per_day": 4}),
                       ("disable_patient_bolus", {})):
        with pytest.raises(CommandError) as exc:
            service.dispatch(Role.CLINICIAN, name, {**args, "expect_version": v})
        assert exc.value.code == "precondition_failed"
    assert service.pump.to_dict() == before
    assert _journal(tmp_path) == records  # the clock did not move: nothing at all appended
    service.pump.memory.close()  # type: ignore[union-attr]
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20")
    assert restored.to_dict()["state_version"] == before["state_version"] == v + 1
    assert restored.prescription is None


def test_a_patient_bolus_book_change_bumps_the_version_live_and_on_replay(tmp_path: Path) -> None:
    service, _ = make_service(directory=tmp_path)
    v = service.pump.state_version
    out = service.dispatch(Role.CLINICIAN, "set_patient_limits",
                           {"dose": "10 mcg", "duration": "0.5 h", "lockout": "3 h",
                            "max_per_day": 4, "expect_version": v})
    assert out["state_version"] == v + 1
    out = service.dispatch(Role.CLINICIAN, "disable_patient_bolus",
                           {"expect_version": v + 1})
    assert out["state_version"] == v + 2
    notes = [r for r in _journal(tmp_path) if r["op"] == "note"]
    assert [(r["kind"], r["changes_state"]) for r in notes] == [
        ("patient_limits_set", True), ("patient_bolus_disabled", True)]
    service.pump.memory.close()  # type: ignore[union-attr]
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20")
    assert restored.alarms.active("memory_error") is None
    assert restored.state_version == v + 2
