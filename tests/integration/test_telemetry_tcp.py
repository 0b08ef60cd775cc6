"""The telemetry session over a real loopback TCP socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.session import PumpEndpoint, Role
from openitb.telemetry.tcp import ServerThread, TcpTransport

CLIN, PAT = b"c" * 32, b"p" * 32


@pytest.fixture
def served() -> Iterator[tuple[int, list[str]]]:
    calls: list[str] = []

    def dispatch(role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        calls.append(name)
        return {"ok_name": name}

    def factory() -> PumpEndpoint:
        return PumpEndpoint({Role.CLINICIAN: CLIN, Role.PATIENT: PAT}, dispatch, time.monotonic)

    with ServerThread(factory) as server:
        yield server.port, calls


def test_commands_over_tcp(served: tuple[int, list[str]]) -> None:
    port, calls = served
    t = TcpTransport("127.0.0.1", port)
    client = ProgrammerClient(t, Role.CLINICIAN, CLIN)
    assert client.command("read_status") == {"ok_name": "read_status"}
    client.close()
    t.close()
    assert calls == ["read_status"]


def test_patient_over_tcp_is_limited(served: tuple[int, list[str]]) -> None:
    port, calls = served
    t = TcpTransport("127.0.0.1", port)
    client = ProgrammerClient(t, Role.PATIENT, PAT)
    with pytest.raises(TelemetryError):
        client.command("program")
    t.close()
    assert calls == []


def test_garbage_header_gets_error_then_close(served: tuple[int, list[str]]) -> None:
    port, calls = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GARBAGE-GARBAGE-GARBAGE")
        data = s.recv(4096)
        assert data[:2] == b"IT"  # an ERROR frame
        s.settimeout(5)
        assert s.recv(4096) == b""  # then closed
    assert calls == []
