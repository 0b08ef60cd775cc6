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

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from openitb.telemetry.frames import (
    Frame,
    FrameError,
    MessageType,
    RawFrame,
    encode,
    mac,
    split,
)


class Role(str, Enum):
    CLINICIAN = "clinician"
    PATIENT = "patient"


# What each role may ask of the pump. The patient therapy manager reads and asks for a bolus
# within limits; everything that changes therapy belongs to the clinician programmer.
PATIENT_COMMANDS = frozenset({"read_status", "patient_bolus", "acknowledge_alarm", "bye"})

# A clinician has at least this long between two frames, e.g. to read and confirm a review
# (docs/telemetry.md "Timeouts"); the TCP transport keeps an authenticated link open as long.
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 3600.0
NONCE_LEN = 16
MAX_REASON = 300
MAX_COMMAND_NAME = 40
COMMAND_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_COMMAND_NAME - 1}}}")


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


def bounded(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters: a reply never grows with what the sender wrote."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PumpEndpoint:
    """Turns request frames into response frames for one pump; one session per connection.

    Order of checks for every frame: length, header and CRC (frames.split), then the HMAC over
    the raw bytes, and only then the CBOR payload with the bounded decoder: nothing from an
    unauthenticated sender is decoded. ``refused_without_session`` counts refusals before a
    session exists, so a transport can close a peer that keeps failing.
    """

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
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"session timeout {timeout_s} s outside (0, {MAX_TIMEOUT_S}]")
        self._keys = dict(keys)
        self._dispatch = dispatch
        self._clock = clock
        self._timeout = timeout_s
        self._nonce = nonce
        self._session: _Session | None = None
        self._out_seq = 0
        self.refused_without_session = 0

    @property
    def role(self) -> Role | None:
        return self._session.role if self._session else None

    @property
    def timeout_s(self) -> float:
        return self._timeout

    def _reply(self, mtype: MessageType, payload: dict[str, Any], key: bytes) -> bytes:
        self._out_seq += 1
        try:
            return encode(Frame(mtype, self._out_seq, payload), key)
        except (FrameError, TypeError, ValueError):
            # A result too large (or not encodable) for a frame: answer with a bounded error,
            # never drop the link. The request was dispatched: say so.
            small = {"code": "reply_too_large", "reason": "the pump's answer does not fit in a "
                     "frame; interrogate before continuing"}
            if "request_seq" in payload:
                small["request_seq"] = payload["request_seq"]
            return encode(Frame(MessageType.ERROR, self._out_seq, small), key)

    def _error(self, code: str, reason: str, key: bytes | None = None,
               request_seq: int | None = None) -> bytes:
        # Before a session exists the error is signed with an all-zero key: it proves nothing,
        # and the client must treat it only as a diagnostic.
        if key is None:
            self.refused_without_session += 1
        payload: dict[str, Any] = {"code": code, "reason": bounded(reason)}
        if request_seq is not None:
            payload["request_seq"] = request_seq
        return self._reply(MessageType.ERROR, payload, key or bytes(32))

    def handle(self, data: bytes) -> bytes:
        """One request frame in, one response frame out. Never raises on bad input."""
        s = self._session
        try:
            raw = split(data)
        except FrameError as exc:
            return self._error(exc.code, exc.reason, s.key if s else None)
        if raw.type is MessageType.HELLO:
            return self._hello(raw)
        if s is None:
            return self._error("no_session", "open a session with HELLO first")
        if not raw.verifies(s.key):
            return self._error("bad_mac", "HMAC mismatch: not signed with this session's key", s.key)
        # From here the frame is authenticated: its sequence number may be echoed.
        now = self._clock()
        if now - s.last_seen > self._timeout:
            self._session = None
            return self._error("session_expired", f"idle for more than {self._timeout:g} s; "
                               "open a new session", s.key, raw.seq)
        if raw.seq <= s.last_seq:
            return self._error("replay", f"sequence {raw.seq} already used (last {s.last_seq})",
                               s.key, raw.seq)
        if raw.type is MessageType.BYE:
            self._session = None
            return self._reply(MessageType.BYE, {"reason": "session closed",
                                                 "request_seq": raw.seq}, s.key)
        if raw.type is not MessageType.COMMAND:
            return self._error("bad_type", f"{raw.type.name} is not a request", s.key, raw.seq)
        try:
            payload = raw.payload()
        except FrameError as exc:
            return self._error(exc.code, exc.reason, s.key, raw.seq)
        name = payload.get("command")
        args = payload.get("args", {})
        if not isinstance(name, str) or not isinstance(args, dict):
            return self._error("bad_payload", "a COMMAND carries 'command' (text) and 'args' (map)",
                               s.key, raw.seq)
        if not COMMAND_NAME.fullmatch(name):
            return self._error("bad_payload", f"a command name is 1 to {MAX_COMMAND_NAME} "
                               f"lowercase letters, digits or '_' (got {len(name)} characters)",
                               s.key, raw.seq)
        if s.role is Role.PATIENT and name not in PATIENT_COMMANDS:
            return self._error("forbidden_role", f"the patient therapy manager may not send "
                               f"'{name}'; allowed: {', '.join(sorted(PATIENT_COMMANDS))}", s.key,
                               raw.seq)
        # The sequence number is consumed only by an authenticated frame, so a forged frame
        # cannot burn the programmer's next number.
        s.last_seq = raw.seq
        s.last_seen = now
        try:
            result = self._dispatch(s.role, name, args)
        except CommandError as exc:
            return self._reply(
                MessageType.RESPONSE,
                {"ok": False, "request_seq": raw.seq, "code": exc.code,
                 "reason": bounded(exc.reason)},
                s.key,
            )
        return self._reply(
            MessageType.RESPONSE, {"ok": True, "request_seq": raw.seq, "result": result}, s.key
        )

    def _hello(self, raw: RawFrame) -> bytes:
        role = next((r for r, k in self._keys.items() if raw.verifies(k)), None)
        if role is None:
            return self._error("bad_mac", "HELLO not signed with any key of this pump")
        try:
            payload = raw.payload()
        except FrameError as exc:
            return self._error(exc.code, exc.reason)
        cn = payload.get("client_nonce")
        claimed = payload.get("role")
        if not isinstance(cn, bytes) or len(cn) != NONCE_LEN:
            return self._error("bad_payload", f"HELLO needs a {NONCE_LEN}-byte client_nonce")
        if claimed != role.value:
            return self._error("bad_role", f"HELLO claims role {str(claimed)[:20]!r} but is "
                               f"signed with the {role.value} key")
        pn = self._nonce(NONCE_LEN)
        key = session_key(self._keys[role], cn, pn)
        self._session = _Session(role, key, raw.seq, self._clock())
        return self._reply(
            MessageType.WELCOME,
            {"pump_nonce": pn, "role": role.value, "timeout_s": self._timeout},
            self._keys[role],
        )
