"""Telemetry frames and sessions: every bad frame gets an error and changes nothing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.frames import (
    Frame,
    FrameError,
    MessageType,
    decode,
    encode,
    split,
)
from openitb.telemetry.session import CommandError, PumpEndpoint, Role

CLIN = b"c" * 32
PAT = b"p" * 32


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A dispatch target that records what reached it: the 'pump state' of these tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[Role, str, dict[str, Any]]] = []

    def __call__(self, role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "refuse":
            raise CommandError("refused", "not now")
        self.calls.append((role, name, args))
        return {"echo": name, "n": len(self.calls)}


def make(timeout: float = 300.0) -> tuple[PumpEndpoint, Recorder, FakeClock]:
    rec, clock = Recorder(), FakeClock()
    ep = PumpEndpoint({Role.CLINICIAN: CLIN, Role.PATIENT: PAT}, rec, clock, timeout_s=timeout)
    return ep, rec, clock


def test_frame_round_trip() -> None:
    f = Frame(MessageType.COMMAND, 7, {"command": "read_status", "args": {}})
    assert decode(encode(f, CLIN), CLIN) == f


def test_corrupted_byte_is_a_crc_error() -> None:
    data = bytearray(encode(Frame(MessageType.COMMAND, 1, {"a": 1}), CLIN))
    data[13] ^= 0x40
    with pytest.raises(FrameError) as exc:
        split(bytes(data))
    assert exc.value.code == "bad_crc"


def test_wrong_key_is_a_mac_error() -> None:
    data = encode(Frame(MessageType.COMMAND, 1, {"a": 1}), CLIN)
    with pytest.raises(FrameError) as exc:
        decode(data, PAT)
    assert exc.value.code == "bad_mac"


def test_clinician_session_runs_commands() -> None:
    ep, rec, _ = make()
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    assert client.open()["role"] == "clinician"
    assert client.command("program", dose="400 mcg/day")["echo"] == "program"
    assert rec.calls == [(Role.CLINICIAN, "program", {"dose": "400 mcg/day"})]


def test_refused_command_is_reported() -> None:
    ep, rec, _ = make()
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    with pytest.raises(TelemetryError) as exc:
        client.command("refuse")
    assert exc.value.code == "refused" and rec.calls == []


def test_patient_key_cannot_program() -> None:
    ep, rec, _ = make()
    client = ProgrammerClient(ep.handle, Role.PATIENT, PAT)
    with pytest.raises(TelemetryError) as exc:
        client.command("program", dose="4000 mcg/day")
    assert exc.value.code == "forbidden_role"
    assert rec.calls == []
    assert client.command("read_status")["echo"] == "read_status"


def test_patient_key_claiming_clinician_role_is_refused() -> None:
    ep, rec, _ = make()
    hello = encode(Frame(MessageType.HELLO, 1, {"role": "clinician", "client_nonce": b"n" * 16}), PAT)
    reply = decode(ep.handle(hello), bytes(32))
    assert reply.type is MessageType.ERROR and reply.payload["code"] == "bad_role"
    assert ep.role is None


def test_unknown_key_is_refused() -> None:
    ep, _, _ = make()
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, b"x" * 32)
    with pytest.raises(TelemetryError) as exc:
        client.open()
    assert exc.value.code == "bad_mac"


def test_replayed_frame_is_refused_and_changes_nothing() -> None:
    ep, rec, _ = make()
    sent: list[bytes] = []

    def tap(data: bytes) -> bytes:
        sent.append(data)
        return ep.handle(data)

    client = ProgrammerClient(tap, Role.CLINICIAN, CLIN)
    client.command("clinician_bolus", dose="50 mcg")
    assert len(rec.calls) == 1
    reply = decode(ep.handle(sent[-1]), client._key)  # type: ignore[arg-type]
    assert reply.type is MessageType.ERROR and reply.payload["code"] == "replay"
    assert len(rec.calls) == 1


def test_command_without_session_is_refused() -> None:
    ep, rec, _ = make()
    data = encode(Frame(MessageType.COMMAND, 1, {"command": "stop", "args": {}}), CLIN)
    reply = decode(ep.handle(data), bytes(32))
    assert reply.payload["code"] == "no_session" and rec.calls == []


def test_session_times_out() -> None:
    ep, rec, clock = make(timeout=60)
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    client.command("read_status")
    clock.t = 61
    with pytest.raises(TelemetryError) as exc:
        client.command("stop")
    assert exc.value.code == "session_expired"
    assert [c[1] for c in rec.calls] == ["read_status"]


def test_oversized_length_field_is_refused() -> None:
    ep, _, _ = make()
    data = bytearray(encode(Frame(MessageType.HELLO, 1, {"a": 1}), CLIN))
    struct.pack_into(">I", data, 8, 10_000_000)
    reply = decode(ep.handle(bytes(data)), bytes(32))
    assert reply.payload["code"] == "too_large"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_never_crash_or_reach_the_pump(data: bytes) -> None:
    ep, rec, _ = make()
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    client.open()
    reply = ep.handle(data)
    assert split(reply).type is MessageType.ERROR
    assert rec.calls == []


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=255))
def test_fuzz_mutated_valid_frame_is_refused(pos: int, flip: int) -> None:
    ep, rec, _ = make()
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    client.open()
    good = encode(Frame(MessageType.COMMAND, 5, {"command": "stop", "args": {}}), client._key)  # type: ignore[arg-type]
    data = bytearray(good)
    data[pos % len(data)] ^= flip
    ep.handle(bytes(data))
    assert rec.calls == []
