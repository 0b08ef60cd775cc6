"""The served pump's memory under attack, over real TCP and real `itb pump serve` processes:
damaged or deleted snapshots, an unwritable state directory, failing writes, and SIGKILLs
during program, refill and bolus traffic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from openitb.pump.memory import SNAPSHOT, SNAPSHOT_PREV, FileMemory
from openitb.pumpservice import crashtest, store
from openitb.pumpservice.runner import open_service
from openitb.pumpservice.service import PumpService
from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import ServerThread, TcpTransport

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RX = {"mode": "continuous", "dose": "200 mcg/day"}


def _serve(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "openitb.cli", "pump", "serve", "--state", str(state), "--port",
         "0", "--clock", "virtual", "--speed", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


@contextmanager
def served(state: Path) -> Iterator[ProgrammerClient]:
    proc = _serve(state)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        key = store.load_keys(state)[Role.CLINICIAN]
        c = ProgrammerClient(TcpTransport("127.0.0.1", json.loads(line)["port"]),
                             Role.CLINICIAN, key)
        c.open()
        yield c
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean shutdown writes a fresh snapshot
        proc.communicate(timeout=20)


@pytest.fixture
def pump(tmp_path: Path) -> Path:
    """A pump implanted over TCP (the serve code in this process), then shut down cleanly."""
    state = tmp_path / "pump"
    store.create(state, "itb-20", "MEM-1", T0, seed=3)
    service, keys = open_service(state, "virtual", 60.0)
    with ServerThread(lambda: service.endpoint(keys)) as server:
        c = ProgrammerClient(TcpTransport("127.0.0.1", server.port), Role.CLINICIAN,
                             keys[Role.CLINICIAN])
        c.open()
        c.command("refill", volume="18 mL", concentration="500 mcg/mL")
        c.command("program", prescription=RX, concentration="500 mcg/mL")
        c.command("start")
        c.command("set_low_alarm", threshold="3 mL")
    service.checkpoint()
    return state


@pytest.mark.parametrize("damage", ["corrupted", "emptied", "deleted"])
def test_a_damaged_snapshot_keeps_the_last_good_state_with_a_memory_alarm(
        pump: Path, damage: str) -> None:
    snap = pump / "memory" / SNAPSHOT
    if damage == "corrupted":
        snap.write_bytes(snap.read_bytes()[:-40] + b"!!")
    elif damage == "emptied":
        snap.write_bytes(b"")
    else:
        snap.unlink()
    evidence = snap.read_bytes() if snap.exists() else None
    with served(pump) as c:
        s = c.command("read_status")
        log = c.command("read_log", last=5)
    # not factory state: the program, the reservoir, the threshold and the log all continue
    assert s["program"] == {"mode": "continuous", "dose": "200.0 mcg/day"}
    assert s["running"] and 17 < s["reservoir_estimate_ml"] <= 18 and s["low_alarm_ml"] == 3
    kinds = [e["kind"] for e in log["entries"]]
    assert kinds[-2:] == ["command_SetLowAlarm", "alarm_raised"] and log["entries"][-1]["seq"] == 5
    alarm = next(a for a in s["alarms"] if a["kind"] == "memory_error")
    assert f"{pump / 'memory' / SNAPSHOT}" in alarm["reason"] and alarm["critical"]
    if evidence is not None:  # the damaged file is kept aside, not overwritten
        assert (pump / "memory" / f"{SNAPSHOT}.damaged-0").read_bytes() == evidence


def test_no_good_snapshot_refuses_to_serve_naming_the_file(pump: Path) -> None:
    (pump / "memory" / SNAPSHOT).write_bytes(b"\x00" * 100)
    (pump / "memory" / SNAPSHOT_PREV).unlink()
    before = sorted(os.listdir(pump / "memory"))
    proc = _serve(pump)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    assert f"{pump / 'memory'}/snapshot.json: not JSON" in err
    assert "will not start from factory settings" in err
    assert sorted(os.listdir(pump / "memory")) == before


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make a directory unwritable even for root (an immutable inode); plain chmod otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)


@pytest.mark.parametrize("which", ["state", "memory"])
def test_an_unwritable_state_directory_is_refused_at_start(pump: Path, which: str) -> None:
    target = pump if which == "state" else pump / "memory"
    with unwritable(target):
        proc = _serve(pump)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    assert f"state directory {target} is not writable" in err and "chmod u+w" in err


def test_a_failing_memory_answers_every_command_and_applies_nothing(tmp_path: Path) -> None:
    state = tmp_path / "pump"
    store.create(state, "itb-20", "MEM-2", T0)
    fail = {"on": False}

    def fault(step: str) -> None:
        if fail["on"]:
            raise OSError(30, "Read-only file system")

    ident = store.load_identity(state)
    controller = store.load_controller(state, ident, T0)
    assert isinstance(controller.memory, FileMemory)
    controller.memory.fault = fault
    clock = {"t": T0}
    service = PumpService(controller, lambda: clock["t"], serial=ident.serial)
    keys = store.load_keys(state)
    with ServerThread(lambda: service.endpoint(keys)) as server:
        c = ProgrammerClient(TcpTransport("127.0.0.1", server.port), Role.CLINICIAN,
                             keys[Role.CLINICIAN])
        c.open()
        c.command("refill", volume="18 mL", concentration="500 mcg/mL")
        fail["on"] = True
        before = controller.to_dict()
        with pytest.raises(TelemetryError) as exc:
            c.command("program", prescription=RX, concentration="500 mcg/mL")
        assert exc.value.code == "memory_write_failed" and "not carried out" in exc.value.reason
        clock["t"] = datetime(2026, 5, 5, tzinfo=UTC)
        with pytest.raises(TelemetryError) as exc:  # answered, the link stays up
            c.command("read_status")
        assert exc.value.code == "memory_write_failed"
        assert controller.to_dict() == before and controller.prescription is None
        fail["on"] = False  # the memory works again: the pump never claims the lost program
        s = c.command("read_status")
        assert s["program"] is None and s["time"] == "2026-05-05T00:00:00+00:00"
    restored = store.load_controller(state, ident, T0)
    assert restored.prescription is None and restored.to_dict()["t"] == controller.t


def _crash_pump(tmp_path: Path) -> Path:
    state = tmp_path / "pump"
    crashtest.new_pump(state, T0)
    return state


def test_sigkills_during_traffic_never_lose_or_repeat_a_command(tmp_path: Path) -> None:
    state = _crash_pump(tmp_path)
    report = crashtest.run(state, 20, crashtest.spawn_fork, seed=11)
    assert report.inconsistent == []
    assert report.kills == 20 and report.acked_writes > 20


def test_sigkills_of_the_real_itb_pump_serve_process(tmp_path: Path) -> None:
    state = _crash_pump(tmp_path)
    report: Any = crashtest.run(state, 2, crashtest.spawn_cli, seed=5, max_s=0.1)
    assert report.inconsistent == [] and report.acked_writes >= 2


def test_a_second_serve_of_the_same_state_directory_is_refused(pump: Path) -> None:
    # Two pumps served from one directory would interleave their journals.
    with served(pump) as c:
        second = _serve(pump)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1 and out == ""
        assert "already served by another process" in err
        assert c.command("read_status")["state"] == "running"  # the first one goes on serving
