"""The programmer's side of a telemetry session over any transport (bytes in, bytes out).

What the client believes, and why:
- WELCOME only if signed with its own role key and naming its role (a pump without the key
  cannot produce it); the session key is then derived from both nonces.
- After the handshake, only frames signed with the session key, with no fallback: a frame that
  does not verify is a forgery or a link fault, never an answer.
- A RESPONSE only if it answers the request just sent (``request_seq``) and its pump sequence is
  above every earlier one: a replayed earlier answer is not taken for this one.
- An ERROR before a session is signed with zero bytes: it is shown as unauthenticated
  (``TelemetryError.authenticated`` is False) and is never taken as success.
A session that received a frame it cannot trust is abandoned: the stream may be out of step.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from openitb.telemetry.frames import Frame, FrameError, MessageType, RawFrame, encode, split
from openitb.telemetry.session import MAX_REASON, NONCE_LEN, Role, bounded, session_key

Transport = Callable[[bytes], bytes]
ZERO_KEY = bytes(32)


class TelemetryError(Exception):
    """A refusal or a link fault. ``authenticated`` says whether the pump provably sent it."""

    def __init__(self, code: str, reason: str, *, authenticated: bool = True) -> None:
        code, reason = bounded(str(code), 40), bounded(str(reason), MAX_REASON)
        shown = reason if authenticated else (f"unauthenticated reply (not proven to come from "
                                              f"the pump): {reason}")
        super().__init__(f"{code}: {shown}")
        self.code = code
        self.reason = shown
        self.authenticated = authenticated


class ProgrammerClient:
    """Opens a session with a role key and sends commands; raises TelemetryError on refusals."""

    def __init__(self, transport: Transport, role: Role, role_key: bytes) -> None:
        self._send = transport
        self.role = role
        self._role_key = role_key
        self._key: bytes | None = None
        self._seq = 0
        self._pump_seq = -1
        self._abandoned: str | None = None

    @property
    def session_open(self) -> bool:
        return self._key is not None

    def _abandon(self, code: str, reason: str) -> TelemetryError:
        self._key = None
        self._abandoned = f"{code}: {reason}"
        return TelemetryError(code, reason, authenticated=False)

    def _unauthenticated(self, raw: RawFrame, fallback: str) -> TelemetryError:
        """The diagnostic of a pre-session ERROR, or ``fallback``; never a success."""
        if raw.type is MessageType.ERROR and raw.verifies(ZERO_KEY):
            try:
                p = raw.payload()
                return TelemetryError(str(p.get("code")), str(p.get("reason")),
                                      authenticated=False)
            except FrameError:
                pass
        return TelemetryError("bad_mac", fallback, authenticated=False)

    def open(self) -> dict[str, Any]:
        if self._abandoned:
            raise TelemetryError("link", f"session abandoned ({self._abandoned}); reconnect",
                                 authenticated=False)
        cn = secrets.token_bytes(NONCE_LEN)
        self._seq += 1
        hello = Frame(MessageType.HELLO, self._seq, {"role": self.role.value, "client_nonce": cn})
        reply = self._send(encode(hello, self._role_key))
        try:
            raw = split(reply)
        except FrameError as exc:
            raise TelemetryError(exc.code, exc.reason, authenticated=False) from None
        if not raw.verifies(self._role_key):
            raise self._unauthenticated(raw, "the answer to HELLO is not signed with this key: "
                                        "whoever answered is not the pump")
        try:
            frame = Frame(raw.type, raw.seq, raw.payload())
        except FrameError as exc:
            raise TelemetryError(exc.code, exc.reason) from None
        if frame.type is MessageType.ERROR:
            raise TelemetryError(str(frame.payload.get("code")), str(frame.payload.get("reason")))
        pn = frame.payload.get("pump_nonce")
        if (frame.type is not MessageType.WELCOME or not isinstance(pn, bytes)
                or len(pn) != NONCE_LEN or frame.payload.get("role") != self.role.value):
            raise TelemetryError("handshake", f"expected a WELCOME for the {self.role.value} role,"
                                 f" got {frame.type.name}")
        self._key = session_key(self._role_key, cn, pn)
        self._pump_seq = raw.seq
        return frame.payload

    def _answer(self, reply: bytes, request_seq: int) -> Frame:
        """The pump's answer to request ``request_seq``, or TelemetryError (see module doc)."""
        assert self._key is not None
        try:
            raw = split(reply)
        except FrameError as exc:
            raise self._abandon(exc.code, exc.reason) from None
        if not raw.verifies(self._key):
            err = self._unauthenticated(raw, "a reply not signed with the session key: not from "
                                        "this pump; nothing it says is believed")
            raise self._abandon(err.code, err.reason)
        try:
            frame = Frame(raw.type, raw.seq, raw.payload())
        except FrameError as exc:
            raise self._abandon(exc.code, exc.reason) from None
        answers = frame.payload.get("request_seq")
        if raw.seq <= self._pump_seq or (answers is not None and answers != request_seq) or (
                answers is None and frame.type is not MessageType.ERROR):
            raise self._abandon("stale_response", f"the reply (pump sequence {raw.seq}, answering "
                                f"{answers!r:.20}) does not answer request {request_seq}; the "
                                "outcome is unknown: interrogate the pump")
        self._pump_seq = raw.seq
        if frame.type is MessageType.ERROR:
            if frame.payload.get("code") == "session_expired":
                self._key = None  # the next command opens a new session
            raise TelemetryError(str(frame.payload.get("code")), str(frame.payload.get("reason")))
        return frame

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        if self._key is None:
            self.open()
        assert self._key is not None
        self._seq += 1
        frame = Frame(MessageType.COMMAND, self._seq, {"command": name, "args": args})
        reply = self._answer(self._send(encode(frame, self._key)), self._seq)
        if reply.type is not MessageType.RESPONSE:
            raise TelemetryError("protocol", f"expected RESPONSE, got {reply.type.name}")
        if reply.payload.get("ok") is not True:
            raise TelemetryError(str(reply.payload.get("code")), str(reply.payload.get("reason")))
        result = reply.payload.get("result", {})
        return result if isinstance(result, dict) else {"value": result}

    def close(self) -> None:
        if self._key is None:
            return
        self._seq += 1
        key, self._key = self._key, None
        self._send(encode(Frame(MessageType.BYE, self._seq, {}), key))
