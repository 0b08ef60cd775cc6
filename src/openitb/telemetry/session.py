"""Telemetry sessions on the pump side: handshake, roles, sequence numbers, timeouts.

The pump holds one key per role. A programmer opens a session with HELLO signed by its role key
and a fresh client nonce; the pump finds the role by the key that verifies, answers WELCOME with
its own nonce, and both derive the session key HMAC(role_key, "openitb-session" | cn | pn).
Every later frame is signed with the session key and carries a sequence number greater than the
last one accepted, so a replayed or duplicated frame is refused. A session idle for longer than
the timeout ends. Every refusal is an ERROR frame with a code and a reason and changes nothing.

This module knows nothing of the pump: commands go to a ``dispatch(role, name, args)`` function
that the pump service supplies. Time comes from an injected clock (seconds, monotonic).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from openitb.telemetry.frames import (
    Frame,
    FrameError,
    MessageType,
    encode,
    mac,
    parse_unverified,
    verify,
)


class Role(str, Enum):
    CLINICIAN = "clinician"
    PATIENT = "patient"


# What each role may ask of the pump. The patient therapy manager reads and asks for a bolus
# within limits; everything that changes therapy belongs to the clinician programmer.
PATIENT_COMMANDS = frozenset({"read_status", "patient_bolus", "acknowledge_alarm", "bye"})

DEFAULT_TIMEOUT_S = 300.0
NONCE_LEN = 16


def session_key(role_key: bytes, client_nonce: bytes, pump_nonce: bytes) -> bytes:
    return mac(role_key, b"openitb-session|" + client_nonce + b"|" + pump_nonce)


class CommandError(Exception):
    """Raised by a dispatch function: the command was understood but refused."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


Dispatch = Callable[[Role, str, dict[str, Any]], dict[str, Any]]


@dataclass
class _Session:
    role: Role
    key: bytes
    last_seq: int
    last_seen: float


class PumpEndpoint:
    """Turns request frames into response frames for one pump; one session per connection."""

    def __init__(
        self,
        keys: dict[Role, bytes],
        dispatch: Dispatch,
        clock: Callable[[], float],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        nonce: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if len({bytes(k) for k in keys.values()}) != len(keys):
            raise ValueError("each role needs its own key")
        self._keys = dict(keys)
        self._dispatch = dispatch
        self._clock = clock
        self._timeout = timeout_s
        self._nonce = nonce
        self._session: _Session | None = None
        self._out_seq = 0

    @property
    def role(self) -> Role | None:
        return self._session.role if self._session else None

    def _reply(self, mtype: MessageType, payload: dict[str, Any], key: bytes) -> bytes:
        self._out_seq += 1
        return encode(Frame(mtype, self._out_seq, payload), key)

    def _error(self, code: str, reason: str, key: bytes | None = None) -> bytes:
        # Before a session exists the error is signed with an all-zero key: it proves nothing,
        # and the client must treat it only as a diagnostic.
        return self._reply(MessageType.ERROR, {"code": code, "reason": reason}, key or bytes(32))

    def handle(self, data: bytes) -> bytes:
        """One request frame in, one response frame out. Never raises on bad input."""
        try:
            frame, signed, tag = parse_unverified(data)
        except FrameError as exc:
            return self._error(exc.code, exc.reason, self._session.key if self._session else None)
        if frame.type is MessageType.HELLO:
            return self._hello(frame, signed, tag)
        s = self._session
        if s is None:
            return self._error("no_session", "open a session with HELLO first")
        if not verify(signed, tag, s.key):
            return self._error("bad_mac", "HMAC mismatch: not signed with this session's key", s.key)
        now = self._clock()
        if now - s.last_seen > self._timeout:
            self._session = None
            return self._error("session_expired", f"idle for more than {self._timeout:g} s; "
                               "open a new session", s.key)
        if frame.seq <= s.last_seq:
            return self._error("replay", f"sequence {frame.seq} already used (last {s.last_seq})",
                               s.key)
        if frame.type is MessageType.BYE:
            self._session = None
            return self._reply(MessageType.BYE, {"reason": "session closed"}, s.key)
        if frame.type is not MessageType.COMMAND:
            return self._error("bad_type", f"{frame.type.name} is not a request", s.key)
        name = frame.payload.get("command")
        args = frame.payload.get("args", {})
        if not isinstance(name, str) or not isinstance(args, dict):
            return self._error("bad_payload", "a COMMAND carries 'command' (text) and 'args' (map)",
                               s.key)
        if s.role is Role.PATIENT and name not in PATIENT_COMMANDS:
            return self._error("forbidden_role", f"the patient therapy manager may not send "
                               f"'{name}'; allowed: {', '.join(sorted(PATIENT_COMMANDS))}", s.key)
        # The sequence number is consumed only by an authenticated frame, so a forged frame
        # cannot burn the programmer's next number.
        s.last_seq = frame.seq
        s.last_seen = now
        try:
            result = self._dispatch(s.role, name, args)
        except CommandError as exc:
            return self._reply(
                MessageType.RESPONSE,
                {"ok": False, "request_seq": frame.seq, "code": exc.code, "reason": exc.reason},
                s.key,
            )
        return self._reply(
            MessageType.RESPONSE, {"ok": True, "request_seq": frame.seq, "result": result}, s.key
        )

    def _hello(self, frame: Frame, signed: bytes, tag: bytes) -> bytes:
        role = next((r for r, k in self._keys.items() if verify(signed, tag, k)), None)
        if role is None:
            return self._error("bad_mac", "HELLO not signed with any key of this pump")
        cn = frame.payload.get("client_nonce")
        claimed = frame.payload.get("role")
        if not isinstance(cn, bytes) or len(cn) != NONCE_LEN:
            return self._error("bad_payload", f"HELLO needs a {NONCE_LEN}-byte client_nonce")
        if claimed != role.value:
            return self._error("bad_role", f"HELLO claims role {claimed!r} but is signed with the "
                               f"{role.value} key")
        pn = self._nonce(NONCE_LEN)
        key = session_key(self._keys[role], cn, pn)
        self._session = _Session(role, key, frame.seq, self._clock())
        return self._reply(
            MessageType.WELCOME,
            {"pump_nonce": pn, "role": role.value, "timeout_s": self._timeout},
            self._keys[role],
        )
