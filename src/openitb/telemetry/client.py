"""The programmer's side of a telemetry session over any transport (bytes in, bytes out)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from openitb.telemetry.frames import Frame, FrameError, MessageType, decode, encode
from openitb.telemetry.session import NONCE_LEN, Role, session_key

Transport = Callable[[bytes], bytes]


class TelemetryError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class ProgrammerClient:
    """Opens a session with a role key and sends commands; raises TelemetryError on refusals."""

    def __init__(self, transport: Transport, role: Role, role_key: bytes) -> None:
        self._send = transport
        self.role = role
        self._role_key = role_key
        self._key: bytes | None = None
        self._seq = 0

    def open(self) -> dict[str, Any]:
        cn = secrets.token_bytes(NONCE_LEN)
        self._seq += 1
        hello = Frame(MessageType.HELLO, self._seq, {"role": self.role.value, "client_nonce": cn})
        reply = self._send(encode(hello, self._role_key))
        frame = self._decode(reply, self._role_key)
        if frame.type is not MessageType.WELCOME:
            raise TelemetryError("handshake", f"expected WELCOME, got {frame.type.name}")
        pn = frame.payload["pump_nonce"]
        self._key = session_key(self._role_key, cn, pn)
        return frame.payload

    def _decode(self, reply: bytes, key: bytes) -> Frame:
        try:
            frame = decode(reply, key)
        except FrameError as exc:
            # An ERROR before a session is signed with a zero key (see session.py).
            try:
                frame = decode(reply, bytes(32))
            except FrameError:
                raise TelemetryError(exc.code, exc.reason) from None
        if frame.type is MessageType.ERROR:
            raise TelemetryError(str(frame.payload.get("code")), str(frame.payload.get("reason")))
        return frame

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        if self._key is None:
            self.open()
        assert self._key is not None
        self._seq += 1
        frame = Frame(MessageType.COMMAND, self._seq, {"command": name, "args": args})
        reply = self._decode(self._send(encode(frame, self._key)), self._key)
        if reply.type is not MessageType.RESPONSE:
            raise TelemetryError("protocol", f"expected RESPONSE, got {reply.type.name}")
        if not reply.payload.get("ok"):
            raise TelemetryError(str(reply.payload.get("code")), str(reply.payload.get("reason")))
        result = reply.payload.get("result", {})
        return result if isinstance(result, dict) else {"value": result}

    def close(self) -> None:
        if self._key is None:
            return
        self._seq += 1
        self._send(encode(Frame(MessageType.BYE, self._seq, {}), self._key))
        self._key = None
