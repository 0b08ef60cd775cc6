"""Each attack on the telemetry link found against a served pump, replayed over real TCP.

Every test here failed on the main branch before issue 12 (see docs/threat-model.md)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import cbor2
import pytest
from typer.testing import CliRunner

from openitb.cli import app
from openitb.pumpservice import store
from openitb.telemetry import tcp
from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.frames import Frame, MessageType, encode, split
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import TcpTransport

from .helpers import KEYS, Impostor, Served, raw_frame

runner = CliRunner()


def _key_file(tmp_path: Path, role: Role = Role.CLINICIAN, serial: str = "FAKE") -> Path:
    p = tmp_path / f"{role.value}.key.json"
    p.write_text(f'{{"serial": "{serial}", "role": "{role.value}", "key": "{"ab" * 32}"}}')
    p.chmod(0o600)
    return p


# --- a keyless impostor ------------------------------------------------------------------
def test_keyless_impostor_is_not_believed_by_the_client(impostor: Impostor) -> None:
    t = TcpTransport("127.0.0.1", impostor.port)
    c = ProgrammerClient(t, Role.CLINICIAN, b"k" * 32)
    with pytest.raises(TelemetryError) as exc:
        c.command("stop")
    t.close()
    assert not exc.value.authenticated and "not the pump" in exc.value.reason
    assert impostor.commands == []  # no command was ever sent to it


def test_keyless_impostor_gets_no_dose_change_from_the_cli(impostor: Impostor,
                                                           tmp_path: Path) -> None:
    key = _key_file(tmp_path)
    r = runner.invoke(app, ["programmer", "program", "--pump", f"127.0.0.1:{impostor.port}",
                            "--key-file", str(key), "--dose", "120 mcg/day", "--origin",
                            "spinal", "--context", "titration", "--yes", "--json",
                            "--record", str(tmp_path / "rec.json")])
    assert r.exit_code == 1, r.output
    assert "program" not in impostor.commands
    r = runner.invoke(app, ["ptm", "status", "--pump", f"127.0.0.1:{impostor.port}",
                            "--key-file", str(_key_file(tmp_path, Role.PATIENT)), "--json"])
    assert r.exit_code == 1 and "running" not in r.stdout


def test_pre_session_error_is_shown_unauthenticated(served: Served) -> None:
    t = TcpTransport("127.0.0.1", served.port)
    c = ProgrammerClient(t, Role.CLINICIAN, b"x" * 32)
    with pytest.raises(TelemetryError) as exc:
        c.open()
    t.close()
    assert exc.value.code == "bad_mac" and not exc.value.authenticated
    assert "unauthenticated" in str(exc.value)


# --- decoder limits ----------------------------------------------------------------------
def _shared(depth: int) -> list[object]:
    x: list[object] = []
    for _ in range(depth):
        x = [x, x]
    return x


def test_shared_references_from_a_patient_key_do_not_freeze_the_pump(served: Served) -> None:
    c, t = served.client(Role.PATIENT)
    body = cbor2.dumps({"command": "acknowledge_alarm", "args": {"kind": _shared(40)}},
                       value_sharing=True)
    assert len(body) < 1000
    c._seq += 1
    t0 = time.monotonic()
    reply = split(t(raw_frame(MessageType.COMMAND, c._seq, body, c._key)))  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 5
    payload = reply.open(c._key)  # type: ignore[arg-type]
    assert payload.type is MessageType.ERROR and payload.payload["code"] == "bad_payload"
    assert "tag 28" in payload.payload["reason"]
    t.close()
    clin, t2 = served.client()
    assert clin.command("read_status")["state"] == "running"
    t2.close()


def test_unauthenticated_payload_is_not_decoded_before_the_mac(served: Served) -> None:
    # Invalid CBOR (a tag, an indefinite map) under a wrong key: the MAC is checked first, so the
    # answer is bad_mac, not bad_payload; the payload was never read.
    for body in (b"\xd8\x1c\x81\x00", b"\xbf", b"\x9f" * 5000):
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
            s.sendall(raw_frame(MessageType.HELLO, 1, body, b"w" * 32))
            reply = split(_read_frame(s)).open(bytes(32))
        assert reply.payload["code"] == "bad_mac"


def _read_frame(s: socket.socket) -> bytes:
    from openitb.telemetry.frames import HEADER, frame_length

    head = s.recv(HEADER.size, socket.MSG_WAITALL)
    return head + s.recv(frame_length(head) - HEADER.size, socket.MSG_WAITALL)


def test_huge_integer_and_huge_command_name_get_error_frames(served: Served) -> None:
    c, t = served.client()
    with pytest.raises(TelemetryError) as exc:
        c.command("read_log", page=2**20000)
    assert exc.value.code == "bad_payload" and exc.value.authenticated
    with pytest.raises(TelemetryError) as exc:
        c.command("x" * 16_300)
    assert exc.value.code == "bad_payload" and len(str(exc.value)) < 400
    with pytest.raises(TelemetryError) as exc:
        c.command("read_log", **{"k" * 4000: 1, "j" * 4000: 2})
    assert exc.value.code == "bad_argument" and len(str(exc.value)) < 400
    assert c.command("read_status")["state"] == "running"  # the link is still there
    t.close()


# --- quantities: one strict grammar --------------------------------------------------------
@pytest.mark.parametrize("text", ["9**9**9 mL", "2*2 mL", "(3) mL", "3 mL*1000", "1e999 mL"])
def test_quantity_expressions_are_refused_at_once(served: Served, text: str) -> None:
    c, t = served.client()
    t0 = time.monotonic()
    with pytest.raises(TelemetryError) as exc:
        c.command("set_low_alarm", threshold=text)
    assert time.monotonic() - t0 < 5
    assert exc.value.code == "bad_argument" and "threshold" in exc.value.reason
    t.close()


def test_arithmetic_in_a_dose_is_not_evaluated(served: Served) -> None:
    c, t = served.client()
    with pytest.raises(TelemetryError) as exc:
        c.command("program", prescription={"mode": "continuous", "dose": "2*200 mcg/day"},
                  concentration="500 mcg/mL")
    assert exc.value.code == "bad_argument"
    assert served.service.pump.prescription.to_dict()["dose"] == "400.0 mcg/day"  # type: ignore[union-attr]
    t.close()


def test_calc_with_an_exponent_tower_returns_at_once() -> None:
    proc = subprocess.run([sys.executable, "-m", "openitb.cli", "calc", "rate", "--dose",
                           "9**9**9 mcg/day", "--concentration", "500 mcg/mL"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "dose" in proc.stderr


# --- responses must answer the request ------------------------------------------------------
def test_a_dropped_stop_answered_with_an_old_response_is_not_success(served: Served) -> None:
    t = TcpTransport("127.0.0.1", served.port)
    replies: list[bytes] = []

    def mitm(data: bytes) -> bytes:
        if replies and b"stop" in data:
            return replies[-1]  # drop the stop, answer with the last genuine response
        replies.append(t(data))
        return replies[-1]

    c = ProgrammerClient(mitm, Role.CLINICIAN, KEYS[Role.CLINICIAN])
    c.command("read_status")
    with pytest.raises(TelemetryError) as exc:
        c.command("stop")
    assert exc.value.code == "stale_response"
    assert served.service.pump.running
    t.close()


# --- timeouts --------------------------------------------------------------------------------
def test_an_authenticated_link_outlives_the_read_timeout(served: Served,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The TCP read timeout applies to peers without a session; a session lives as long as the
    # session timeout (300 s), so a clinician reading a review is not cut off.
    monkeypatch.setattr(tcp, "READ_TIMEOUT_S", 0.5)
    c, t = served.client()
    time.sleep(1.5)
    assert c.command("read_status")["state"] == "running"
    t.close()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        time.sleep(1.5)
        assert s.recv(10) == b""  # no session: closed


def test_session_timeout_gives_a_clinician_five_minutes() -> None:
    from openitb.telemetry.session import DEFAULT_TIMEOUT_S

    assert DEFAULT_TIMEOUT_S >= 300 and tcp.IDLE_GRACE_S > 0


# --- floods ------------------------------------------------------------------------------------
def _bad_hello() -> bytes:
    return encode(Frame(MessageType.HELLO, 1, {"role": "clinician", "client_nonce": b"n" * 16}),
                  b"z" * 32)


def test_a_flood_of_bad_hellos_is_closed_and_the_clinician_gets_through(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcp, "READ_TIMEOUT_S", 1.0)
    socks = []
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        s.sendall(_bad_hello())
        socks.append(s)
    c, t = served.client()
    assert c.command("read_status")["state"] == "running"
    assert served.server.gate.unauthenticated <= served.server.gate.max_unauthenticated
    time.sleep(2.0)
    closed = 0
    for s in socks:
        s.settimeout(5)
        try:
            data = s.recv(65536)
            while data:
                data = s.recv(65536)
        except (ConnectionError, TimeoutError):
            pass
        closed += 1
        s.close()
    assert closed == 150 and served.server.gate.unauthenticated == 0
    assert served.server.log.total == 0  # peers going away are not errors: nothing logged
    assert c.command("read_status")["state"] == "running"  # the session was never touched
    t.close()


def test_a_peer_out_of_budget_is_closed_after_its_refusals(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        for _ in range(tcp.MAX_REFUSED_WITHOUT_SESSION):
            s.sendall(_bad_hello())
            assert split(_read_frame(s)).type is MessageType.ERROR
        assert s.recv(10) == b""


def test_the_bounded_log_keeps_twenty_lines_a_minute() -> None:
    lines: list[str] = []

    class Sink:
        def warning(self, fmt: str, *args: object) -> None:
            lines.append(fmt % args)

    now = [0.0]
    log = tcp.BoundedLog(20, lambda: now[0], Sink())  # type: ignore[arg-type]
    for _ in range(10_000):
        log("x" * 10_000)
    assert len(lines) == 20 and all(len(line) < 300 for line in lines)
    now[0] = 61.0
    log("next minute")
    assert "9980 similar messages left out" in lines[20] and len(lines) == 22


# --- key files, state files -----------------------------------------------------------------
def test_key_file_readable_by_others_is_refused_with_the_chmod(tmp_path: Path) -> None:
    key = _key_file(tmp_path)
    key.chmod(0o644)
    r = runner.invoke(app, ["programmer", "interrogate", "--pump", "127.0.0.1:9", "--key-file",
                            str(key)])
    assert r.exit_code == 2 and f"chmod 600 {key}" in r.output.replace("\n", "")


def test_serve_refuses_open_keys_state_dir_and_a_misshapen_ptm_json(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from openitb.errors import InvalidInput
    from openitb.pumpservice.runner import open_service

    d = tmp_path / "p"
    store.create(d, "itb-20", "S-1", datetime(2026, 1, 1, tzinfo=UTC), seed=1)
    open_service(d, "virtual", 1.0)  # as created: private, well formed
    (d / "keys.json").chmod(0o640)
    with pytest.raises(InvalidInput, match=f"chmod 600 {d / 'keys.json'}"):
        open_service(d, "virtual", 1.0)
    (d / "keys.json").chmod(0o600)
    d.chmod(0o755)
    with pytest.raises(InvalidInput, match=f"chmod 700 {d}"):
        open_service(d, "virtual", 1.0)
    d.chmod(0o700)
    (d / "ptm.json").write_text('{"limits": {"dose_mcg": "lots"}, "activations": []}')
    with pytest.raises(InvalidInput, match="ptm.json"):
        open_service(d, "virtual", 1.0)
    (d / "ptm.json").write_text('[]')
    with pytest.raises(InvalidInput, match="ptm.json"):
        open_service(d, "virtual", 1.0)
    (d / "ptm.json").write_text('{"limits": null, "activations": []}')
    (d / "pump.json").write_text('{"serial": ["S-1"], "profile": "itb-20"}')
    with pytest.raises(InvalidInput, match="pump.json"):
        open_service(d, "virtual", 1.0)


# --- ranges ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dose", ["1e-300 mcg", "0.000001 mcg", "0.4 mcg"])
def test_a_clinician_bolus_below_one_stroke_is_refused(served: Served, dose: str) -> None:
    c, t = served.client()
    with pytest.raises(TelemetryError) as exc:
        c.command("clinician_bolus", dose=dose, duration="1 h")
    # 1 uL stroke at 500 mcg/mL: 0.5 mcg
    assert exc.value.code == "refused" and "one stroke" in exc.value.reason
    assert served.service.pump.bolus is None
    assert c.command("clinician_bolus", dose="0.5 mcg", duration="1 h")["ends_at"]
    t.close()


def test_served_pump_with_few_descriptors_survives_a_connection_flood(tmp_path: Path) -> None:
    # `itb pump serve` with 128 file descriptors, 300 connections each sending a bad HELLO:
    # the caps keep descriptors free, the clinician interrogates, stderr stays small.
    import json
    import os
    import resource
    import signal

    state = tmp_path / "pump"
    r = runner.invoke(app, ["pump", "new", "--state", str(state), "--profile", "itb-20",
                            "--serial", "FLOOD-1", "--json"])
    assert r.exit_code == 0, r.output

    def low_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    err = tmp_path / "stderr.txt"
    with err.open("w") as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openitb.cli", "pump", "serve", "--state", str(state),
             "--port", "0", "--clock", "virtual", "--speed", "60"],
            stdout=subprocess.PIPE, stderr=err_f, text=True, preexec_fn=low_fds,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        socks = []
        try:
            assert proc.stdout is not None
            port = json.loads(proc.stdout.readline())["port"]
            for _ in range(300):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(_bad_hello())
                socks.append(s)
            time.sleep(0.5)
            r = runner.invoke(app, ["programmer", "interrogate", "--pump", f"127.0.0.1:{port}",
                                    "--key-file", str(state / "clinician.key.json"), "--json",
                                    "--record", str(tmp_path / "rec.json")])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["serial"] == "FLOOD-1"
        finally:
            for s in socks:
                s.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert err.stat().st_size < 20_000, err.read_text()[:2000]
