"""Stateful fuzzing of authenticated sessions against a real pump service.

Sessions are opened with the genuine keys (clinician and patient, each on its own connection);
then hypothesis drives sequences of hostile frames signed with the session key (wrong
sequences, types, commands, roles and arguments; damaged CBOR; frames damaged after signing)
mixed with genuine commands and new handshakes. Invariants after every step: the endpoint never
raises, every reply verifies with the session key (or is a pre-session diagnostic), a frame
without a valid MAC changes nothing at all, a refused command changes no therapy setting, and a
patient session never changes the program, the limits or the alarms' thresholds.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import InMemory
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.frames import Frame, FrameError, MessageType, encode, split
from openitb.telemetry.fuzz import COMMAND_JUNK, authenticated_frame, random_args
from openitb.telemetry.session import PumpEndpoint, Role

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = {Role.CLINICIAN: b"C" * 32, Role.PATIENT: b"P" * 32}


def therapy(service: PumpService) -> tuple[Any, ...]:
    p = service.pump
    return (p.prescription, p.program_conc, p.running, p.reservoir_estimate_nl,
            p.low_threshold_nl, p.bolus, service.book.limits)


def everything(service: PumpService) -> str:
    return json.dumps([service.pump.to_dict(), service.book.to_dict()], sort_keys=True,
                      default=str)


class Session:
    """One connection: its endpoint, the genuine client that opened it, the next sequence."""

    def __init__(self, service: PumpService, role: Role, clock: list[float]) -> None:
        self.endpoint: PumpEndpoint = service.endpoint(KEYS, monotonic=lambda: clock[0])
        self.client = ProgrammerClient(self.endpoint.handle, role, KEYS[role])
        self.client.open()
        self.role = role

    @property
    def key(self) -> bytes:
        assert self.client._key is not None
        return self.client._key


class AuthenticatedSessions(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.clock = [0.0]
        self.service = PumpService(zero_error_pump("itb-20", T0, memory=InMemory()),
                                   ManualClock(T0), serial="F-1")
        self.sessions = {r: Session(self.service, r, self.clock) for r in Role}
        c = self.sessions[Role.CLINICIAN].client
        c.command("refill", volume="20 mL", concentration="500 mcg/mL")
        c.command("program", prescription={"mode": "continuous", "dose": "400 mcg/day"},
                  concentration="500 mcg/mL")
        c.command("start")
        c.command("set_patient_limits", dose="50 mcg", duration="30 min", lockout="3 h",
                  max_per_day=4)
        self.names = self.service.command_names

    def _send(self, s: Session, data: bytes, authentic: bool) -> None:
        before_all, before = everything(self.service), therapy(self.service)
        reply = s.endpoint.handle(data)  # must not raise
        raw = split(reply)
        try:
            frame = raw.open(s.key)
        except FrameError:
            frame = raw.open(bytes(32))  # a pre-session diagnostic, nothing else
            assert frame.type is MessageType.ERROR
        assert frame.type in (MessageType.ERROR, MessageType.RESPONSE, MessageType.BYE,
                              MessageType.WELCOME)
        assert len(reply) < 17_000
        if not authentic:
            assert everything(self.service) == before_all
        ok = frame.type is MessageType.RESPONSE and frame.payload.get("ok") is True
        if not ok:
            assert therapy(self.service) == before
        if s.role is Role.PATIENT:
            after = therapy(self.service)
            assert after[0] == before[0] and after[4] == before[4] and after[6] == before[6]
        if frame.type is MessageType.WELCOME or (
                frame.type is MessageType.ERROR and frame.payload.get("code") == "session_expired"):
            self._reopen(s.role)
        elif frame.type is MessageType.BYE:
            self._reopen(s.role)

    def _reopen(self, role: Role) -> None:
        self.sessions[role] = Session(self.service, role, self.clock)

    @rule(role=st.sampled_from(list(Role)), seed=st.integers(0, 2**32 - 1))
    def hostile_frame(self, role: Role, seed: int) -> None:
        s = self.sessions[role]
        rng = random.Random(seed)
        data, seq, authentic = authenticated_frame(rng, s.key, s.client._seq + 1, self.names)
        if authentic and seq > s.client._seq:
            s.client._seq = seq
        self._send(s, data, authentic)

    @rule(role=st.sampled_from(list(Role)),
          name=st.sampled_from(("read_status", "program", "stop", "start", "clinician_bolus",
                                "patient_bolus", "set_patient_limits", "refill",
                                "acknowledge_alarm", "read_log", "set_low_alarm") + COMMAND_JUNK),
          seed=st.integers(0, 2**32 - 1), seq_shift=st.sampled_from([1, 1, 1, 0, -1, 1000]))
    def command_with_random_arguments(self, role: Role, name: str, seed: int,
                                      seq_shift: int) -> None:
        s = self.sessions[role]
        seq = max(0, s.client._seq + seq_shift)
        if seq > s.client._seq:
            s.client._seq = seq
        frame = Frame(MessageType.COMMAND, seq, {"command": name,
                                                 "args": random_args(random.Random(seed))})
        try:
            data = encode(frame, s.key)
        except (FrameError, ValueError, TypeError):
            return
        self._send(s, data, True)

    @rule(role=st.sampled_from(list(Role)))
    def genuine_read(self, role: Role) -> None:
        # Whatever came before, the genuine client with the genuine key is still served.
        s = self.sessions[role]
        session = s.endpoint._session
        if (session is None or self.clock[0] - session.last_seen > 300
                or s.client._seq >= 0xFFFFFFFF):  # a key holder may use up a session's numbers
            self._reopen(role)
        assert self.sessions[role].client.command("read_status")["serial"] == "F-1"

    @rule(role=st.sampled_from(list(Role)))
    def new_handshake(self, role: Role) -> None:
        self._reopen(role)

    @precondition(lambda self: self.clock[0] < 1000)
    @rule(seconds=st.sampled_from([1.0, 100.0, 301.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock[0] += seconds

    @invariant()
    def log_chain_holds(self) -> None:
        assert self.service.pump.log.verify()[0]


AuthenticatedSessions.TestCase.settings = settings(max_examples=30, stateful_step_count=30,
                                                   deadline=None)
test_authenticated_sessions_survive_hostile_frames = AuthenticatedSessions.TestCase
