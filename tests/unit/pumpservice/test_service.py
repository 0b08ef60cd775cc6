"""The pump service: argument validation, role limits, what the wire shows, persistence."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from openitb.cli import app
from openitb.pump.controller import PumpController
from openitb.pump.memory import FileMemory
from openitb.telemetry.client import TelemetryError
from openitb.telemetry.session import Role

from .helpers import T0, client, make_service, set_up_running


def test_program_and_read_back_over_the_frames() -> None:
    service, _ = make_service()
    c = set_up_running(service)
    st_ = c.command("read_status")
    assert st_["state"] == "running"
    assert st_["program"] == {"mode": "continuous", "dose": "400.0 mcg/day"}
    assert st_["program_concentration_mcg_per_ml"] == 500.0
    assert service.pump.prescription is not None
    assert service.pump.prescription.daily_dose().value == 400.0


def test_mg_concentration_is_converted_not_guessed() -> None:
    service, _ = make_service()
    c = client(service)
    c.command("refill", volume="20 mL", concentration="0.5 mg/mL")
    assert service.pump.reservoir_conc == 500.0


@pytest.mark.parametrize("args, fragment", [
    ({"dose": "400", "duration": "1 h"}, "dose: got '400'"),  # bare number: mcg or mg?
    ({"dose": 400, "duration": "1 h"}, "text with a unit"),
    ({"dose": "400 mL", "duration": "1 h"}, "not a mass"),
    ({"dose": "50 mcg"}, "needs duration"),
    ({"dose": "50 mcg", "duration": "1 h", "rate": "x"}, "does not take rate"),
    ({"dose": "-5 mcg", "duration": "1 h"}, "negative"),
    ({"dose": "nan mcg", "duration": "1 h"}, "dose"),
])
def test_bad_arguments_are_refused_with_what_is_allowed(args: dict[str, object],
                                                        fragment: str) -> None:
    service, _ = make_service()
    c = set_up_running(service)
    before = service.pump.to_dict()
    with pytest.raises(TelemetryError) as exc:
        c.command("clinician_bolus", **args)
    assert exc.value.code == "bad_argument"
    assert fragment in exc.value.reason
    after = service.pump.to_dict()
    assert after["bolus"] is None and after["prescription"] == before["prescription"]


def test_unknown_command_is_named() -> None:
    service, _ = make_service()
    with pytest.raises(TelemetryError) as exc:
        client(service).command("self_destruct")
    assert exc.value.code == "unknown_command" and "read_status" in exc.value.reason


def test_refused_by_the_controller_changes_nothing() -> None:
    service, _ = make_service()
    c = client(service)
    with pytest.raises(TelemetryError) as exc:
        c.command("refill", volume="25 mL", concentration="500 mcg/mL")  # a 20 mL pump
    assert exc.value.code == "refused" and "capacity" in exc.value.reason
    assert service.pump.reservoir_estimate_nl == 0


def test_patient_key_cannot_program() -> None:
    service, _ = make_service()
    set_up_running(service)
    p = client(service, Role.PATIENT)
    with pytest.raises(TelemetryError) as exc:
        p.command("program", prescription={"mode": "continuous", "dose": "900 mcg/day"},
                  concentration="500 mcg/mL")
    assert exc.value.code == "forbidden_role"
    assert service.pump.prescription is not None
    assert service.pump.prescription.daily_dose().value == 400.0


def test_clinician_key_cannot_give_a_patient_bolus() -> None:
    service, _ = make_service()
    c = set_up_running(service)
    with pytest.raises(TelemetryError) as exc:
        c.command("patient_bolus")
    assert exc.value.code == "forbidden_role"


def test_wire_status_hides_the_simulated_truth() -> None:
    service, clock = make_service()
    c = set_up_running(service)
    clock.advance(timedelta(days=3))
    s = c.command("read_status")
    assert "reservoir_ml" not in s and "delivered_mcg" not in s and "tissue_ml" not in s
    assert s["reservoir_estimate_ml"] == pytest.approx(20 - 3 * 0.8, abs=0.002)


def test_patient_bolus_limits_enforced_by_the_pump() -> None:
    service, clock = make_service()
    c = set_up_running(service)
    c.command("set_patient_limits", dose="20 mcg", duration="10 min", lockout="3 h", max_per_day=3)
    p = client(service, Role.PATIENT)
    first = p.command("patient_bolus")
    assert first["used_today"] == 1
    with pytest.raises(TelemetryError) as exc:
        p.command("patient_bolus")
    assert exc.value.code == "ptm_lockout" and "next allowed at 2026-03-02T11:00:00" in exc.value.reason
    for _ in range(2):
        clock.advance(timedelta(hours=3))
        p.command("patient_bolus")
    clock.advance(timedelta(hours=3))
    with pytest.raises(TelemetryError) as exc:
        p.command("patient_bolus")
    assert exc.value.code == "ptm_daily_limit" and "next allowed at 2026-03-03T08:00:00" in exc.value.reason
    clock.advance(timedelta(hours=15))  # 08:00 next day: the first activation left the window
    assert p.command("patient_bolus")["used_today"] == 3
    kinds = [e["kind"] for e in service.pump.log.entries]
    assert kinds.count("patient_bolus") == 4 and kinds.count("patient_bolus_refused") == 2


def test_patient_bolus_disabled_until_the_clinician_sets_limits() -> None:
    service, _ = make_service()
    set_up_running(service)
    with pytest.raises(TelemetryError) as exc:
        client(service, Role.PATIENT).command("patient_bolus")
    assert exc.value.code == "ptm_disabled"


def test_inconsistent_patient_limits_refused() -> None:
    service, _ = make_service()
    c = set_up_running(service)
    with pytest.raises(TelemetryError) as exc:
        c.command("set_patient_limits", dose="20 mcg", duration="10 min", lockout="2 h",
                  max_per_day=24)
    assert exc.value.code == "bad_argument" and "do not fit in 24 h" in exc.value.reason
    assert service.book.limits is None


def test_each_command_persists_to_file_memory(tmp_path: Path) -> None:
    service, clock = make_service(directory=tmp_path)
    set_up_running(service)
    clock.advance(timedelta(hours=5))
    client(service).command("read_status")
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20", clock())
    # The read itself wrote nothing: only its radio charge is not in memory yet (it rides on
    # the next record; pump/controller.py ``read``).
    assert service.pump.unjournaled_reads == 1
    restored._charge_telemetry(service.pump.unjournaled_reads)
    assert restored.to_dict() == service.pump.to_dict()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=12),
                                                      st.floats(allow_nan=True)), max_size=3),
       st.sampled_from(["program", "refill", "clinician_bolus", "set_low_alarm", "set_clock",
                        "set_patient_limits", "read_log", "acknowledge_alarm", "bridge_bolus"]))
def test_random_arguments_never_crash_the_service(args: dict[str, object], name: str) -> None:
    service, _ = make_service()
    c = set_up_running(service)
    before = service.pump.prescription
    try:
        c.command(name, **args)
    except TelemetryError as exc:
        # bad_payload: an integer beyond 64 bits (a CBOR bignum tag) is refused by the decoder
        assert exc.code in ("bad_argument", "refused", "bad_payload")
    assert service.pump.prescription == before or name == "program"


def test_pump_new_writes_keys_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    d = tmp_path / "pump"
    r = runner.invoke(app, ["pump", "new", "--state", str(d), "--profile", "itb-20", "--serial",
                            "P-0001", "--start", T0.isoformat(), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(bytes.fromhex(out["clinician_key"])) == 32
    for name in ("keys.json", "clinician.key.json", "patient.key.json"):
        assert stat.S_IMODE(os.stat(d / name).st_mode) == 0o600
    r2 = runner.invoke(app, ["pump", "new", "--state", str(d), "--profile", "itb-20", "--serial",
                             "P-0001"])
    assert r2.exit_code == 1 and "already holds" in r2.output
    r3 = runner.invoke(app, ["pump", "new", "--state", str(tmp_path / "x"), "--profile",
                             "itb-99", "--serial", "P"])
    assert r3.exit_code == 2


def test_patient_activation_is_saved_before_the_bolus_starts() -> None:
    service, _ = make_service()
    c = set_up_running(service)
    c.command("set_patient_limits", dose="20 mcg", duration="10 min", lockout="3 h", max_per_day=3)
    seen: list[bool] = []
    service._save_book = lambda book: seen.append(service.pump.bolus is None)
    client(service, Role.PATIENT).command("patient_bolus")
    assert seen == [True]  # a crash after the save loses a bolus, never a limit


def test_random_and_mutated_frames_never_change_the_real_pump() -> None:
    import random

    from openitb.telemetry.frames import Frame, MessageType, encode
    from openitb.telemetry.fuzz import mutated

    service, _ = make_service()
    set_up_running(service)
    before = json.dumps(service.pump.to_dict(), sort_keys=True)
    book = service.book.to_dict()
    from .helpers import KEYS
    ep = service.endpoint(KEYS)
    from openitb.telemetry.client import ProgrammerClient
    c = ProgrammerClient(ep.handle, Role.CLINICIAN, KEYS[Role.CLINICIAN])
    c.open()
    assert c._key is not None
    good = [encode(Frame(MessageType.COMMAND, 50 + i, {"command": name, "args": args}), c._key)
            for i, (name, args) in enumerate([
                ("stop", {}), ("program", {"prescription": {"mode": "continuous",
                                                            "dose": "900 mcg/day"},
                                           "concentration": "500 mcg/mL"}),
                ("refill", {"volume": "1 mL", "concentration": "2000 mcg/mL"}),
                ("clinician_bolus", {"dose": "100 mcg", "duration": "1 h"})])]
    rng = random.Random(4)
    for i in range(2000):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 200))
        else:
            data = mutated(rng.choice(good), rng, 3)
        ep.handle(data)
    assert json.dumps(service.pump.to_dict(), sort_keys=True) == before
    assert service.book.to_dict() == book


def test_catching_up_without_a_write_loses_nothing_after_a_crash(tmp_path: Path) -> None:
    service, clock = make_service(directory=tmp_path)
    c = set_up_running(service)
    clock.advance(timedelta(hours=7, minutes=13))
    with pytest.raises(TelemetryError):
        c.command("start")  # refused: caught up, nothing persisted
    # Power fails here. The pump restarts from its last snapshot and runs to the same time.
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20", clock())
    restored.advance(clock())
    live, again = service.pump.to_dict(), restored.to_dict()
    assert again == live
