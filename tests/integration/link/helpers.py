"""A real PumpService behind a real loopback TCP server, and a zero-key impostor pump."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest

from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import InMemory
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.frames import HEADER, Frame, MessageType, encode, frame_length, split
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import ServerThread, TcpTransport

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = {Role.CLINICIAN: b"C" * 32, Role.PATIENT: b"P" * 32}


def make_service() -> PumpService:
    return PumpService(zero_error_pump("itb-20", T0, memory=InMemory()), ManualClock(T0),
                       serial="T-1")


def set_up_running(c: ProgrammerClient) -> None:
    c.command("refill", volume="20 mL", concentration="500 mcg/mL")
    c.command("program", prescription={"mode": "continuous", "dose": "400 mcg/day"},
              concentration="500 mcg/mL")
    c.command("start")


@dataclass
class Served:
    service: PumpService
    server: ServerThread

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, role: Role = Role.CLINICIAN) -> tuple[ProgrammerClient, TcpTransport]:
        t = TcpTransport("127.0.0.1", self.port, timeout_s=10)
        c = ProgrammerClient(t, role, KEYS[role])
        c.open()
        return c, t


@pytest.fixture
def served() -> Iterator[Served]:
    service = make_service()
    with ServerThread(lambda: service.endpoint(KEYS)) as server:
        s = Served(service, server)
        c, t = s.client()
        set_up_running(c)
        c.close()
        t.close()
        yield s


def raw_frame(mtype: MessageType, seq: int, body: bytes, key: bytes) -> bytes:
    """A frame around ``body`` exactly as given (encode() would re-encode it canonically)."""
    import hashlib
    import hmac
    import struct
    import zlib

    head = HEADER.pack(b"IT", 1, int(mtype), seq, len(body))
    signed = head + body + hmac.new(key, head + body, hashlib.sha256).digest()
    return signed + struct.pack(">I", zlib.crc32(signed))


@dataclass
class Impostor:
    """A fake pump without any key: signs WELCOME and RESPONSE with 32 zero bytes and says yes
    to everything. ``commands`` are the commands it was sent (read without a key)."""

    port: int = 0
    commands: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> Impostor:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        status: dict[str, Any] = {"serial": "FAKE", "state": "running", "running": True,
                                  "reservoir_estimate_ml": 19.0, "program": None}
        seq = 0
        with conn:
            while True:
                try:
                    head = conn.recv(HEADER.size, socket.MSG_WAITALL)
                    if len(head) < HEADER.size:
                        return
                    rest = conn.recv(frame_length(head) - HEADER.size, socket.MSG_WAITALL)
                except OSError:
                    return
                raw = split(head + rest)
                seq += 1
                if raw.type is MessageType.HELLO:
                    reply = Frame(MessageType.WELCOME, seq, {"pump_nonce": secrets.token_bytes(16),
                                                             "role": "clinician",
                                                             "timeout_s": 300.0})
                elif raw.type is MessageType.COMMAND:
                    payload = cbor2.loads(raw.body)
                    self.commands.append(payload["command"])
                    reply = Frame(MessageType.RESPONSE, seq, {"ok": True, "request_seq": raw.seq,
                                                              "result": status})
                else:
                    reply = Frame(MessageType.BYE, seq, {})
                conn.sendall(encode(reply, bytes(32)))

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    imp = Impostor().start()
    yield imp
    imp.stop()
