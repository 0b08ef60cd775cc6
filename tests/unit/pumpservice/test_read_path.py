"""The read path: a read_status reply is what it always was, computed once, and writes nothing.

What a reply held before the read path was made fast: the service status after the read's
effects (the MRI wait ended, the radio charge), with the 24 h history scanned afresh from the
event log, encoded as canonical CBOR in one piece. Each test compares the reply with exactly that.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump import commands as cmd
from openitb.pump import history
from openitb.pump.controller import MAX_UNJOURNALED_READS, PumpController, _log_seconds, iso
from openitb.pump.memory import JOURNAL, FileMemory
from openitb.pumpservice.service import PumpService
from openitb.telemetry.frames import Frame, MessageType, encode, split
from openitb.telemetry.session import Role

from .helpers import KEYS, make_service, set_up_running


def _reference(service: PumpService) -> dict[str, Any]:
    """The status as the reply always carried it, history scanned afresh (no index)."""
    p = service.pump
    since = p.t - 24 * 3600
    return {**service.status(), "history_24h": history.scan(
        p.log, since, iso(since), 24.0, history.HISTORY_MAX_ENTRIES, _log_seconds)}


class Wire:
    """A clinician session through the real endpoint, keeping each reply's raw payload."""

    def __init__(self, service: PumpService) -> None:
        from openitb.telemetry.client import ProgrammerClient

        self.endpoint = service.endpoint(KEYS)
        self.raw: bytes = b""

        def send(data: bytes) -> bytes:
            reply = self.endpoint.handle(data)
            self.raw = split(reply).body
            return reply

        self.client = ProgrammerClient(send, Role.CLINICIAN, KEYS[Role.CLINICIAN])
        self.client.open()

    def read_status(self) -> dict[str, Any]:
        return self.client.command("read_status")


def _check_reply(service: PumpService, wire: Wire) -> None:
    got = wire.read_status()
    assert got == _reference(service)  # every field, the history included
    # and byte for byte the canonical encoding of the whole reply in one piece
    assert wire.raw == cbor2.dumps(cbor2.loads(wire.raw), canonical=True)


COMMANDS = st.lists(st.tuples(
    st.sampled_from(["program", "bolus", "stop", "start", "refill", "advance", "read",
                     "limits", "mri", "read_log", "bad"]),
    st.integers(0, 100_000)), max_size=25)


def _send(service: PumpService, wire: Wire, op: str, n: int, clock: Any) -> None:
    c = wire.client
    try:
        if op == "program":
            c.command("program", prescription={"mode": "continuous",
                                               "dose": f"{100 + n % 500} mcg/day"},
                      concentration="500 mcg/mL")
        elif op == "bolus":
            c.command("clinician_bolus", dose=f"{5 + n % 40} mcg", duration="1 h")
        elif op in ("stop", "start"):
            c.command(op)
        elif op == "refill":
            c.command("refill", volume=f"{1 + n % 19} mL", concentration="500 mcg/mL")
        elif op == "advance":
            clock.advance(timedelta(seconds=n))
        elif op == "read":
            c.command("read_status")
        elif op == "limits":
            c.command("set_patient_limits", dose="20 mcg", duration="30 min", lockout="3 h",
                      max_per_day=1 + n % 6)
        elif op == "mri":  # an environment event; the next read resumes the pump
            service.inject(cmd.MriEnd() if service.pump.stalled else cmd.MriStart())
        elif op == "read_log":
            c.command("read_log", last=1 + n % 50)
        elif op == "bad":
            c.command("refill", volume="99 mL", concentration="500 mcg/mL")
    except Exception as exc:  # a refusal is an answer; the link stays
        from openitb.telemetry.client import TelemetryError

        assert isinstance(exc, TelemetryError) and exc.authenticated, exc


@settings(max_examples=60, deadline=None)
@given(COMMANDS)
def test_every_read_status_reply_equals_the_fresh_reference_after_any_commands(
        steps: list[tuple[str, int]]) -> None:
    service, clock = make_service()
    set_up_running(service)
    wire = Wire(service)
    _check_reply(service, wire)
    for op, n in steps:
        _send(service, wire, op, n, clock)
        _check_reply(service, wire)
        _check_reply(service, wire)  # the kept history and its kept encoding


def test_the_status_is_computed_once_per_read_status(monkeypatch: Any) -> None:
    service, _ = make_service()
    set_up_running(service)
    wire = Wire(service)
    calls = {"status": 0}
    inner = PumpController.status

    def counted(self: PumpController) -> dict[str, Any]:
        calls["status"] += 1
        return inner(self)

    monkeypatch.setattr(PumpController, "status", counted)
    wire.read_status()
    assert calls["status"] == 1  # before: twice (the controller's read, then the service's)


def test_a_read_writes_nothing_and_its_charge_rides_on_the_next_record(tmp_path: Path) -> None:
    service, clock = make_service(directory=tmp_path)
    c = set_up_running(service)
    journal = tmp_path / JOURNAL
    size = journal.stat().st_size
    for _ in range(100):
        c.command("read_status")
    assert journal.stat().st_size == size  # no journal line, no fsync: nothing written
    assert service.pump.unjournaled_reads == 100
    clock.advance(timedelta(minutes=5))
    c.command("stop")  # a write: its journal records carry the reads before them
    records = [line for line in journal.read_bytes().splitlines()[-2:]]
    assert b'"reads":100' in records[0]
    assert service.pump.unjournaled_reads == 0
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20")
    assert restored.alarms.active("memory_error") is None  # every fingerprint matched
    assert restored.to_dict() == service.pump.to_dict()  # the 100 radio charges included


def test_reads_without_a_write_are_journaled_once_per_bound(tmp_path: Path) -> None:
    service, _ = make_service(directory=tmp_path)
    c = set_up_running(service)
    journal = tmp_path / JOURNAL
    lines = len(journal.read_bytes().splitlines())
    for _ in range(2 * MAX_UNJOURNALED_READS + 3):
        c.command("read_status")
    # at most MAX_UNJOURNALED_READS radio charges are ever only in RAM
    assert len(journal.read_bytes().splitlines()) == lines + 2
    assert service.pump.unjournaled_reads < MAX_UNJOURNALED_READS
    restored = PumpController.restore(FileMemory(tmp_path), "itb-20")
    restored._charge_telemetry(service.pump.unjournaled_reads)
    assert restored.to_dict() == service.pump.to_dict()


def test_the_read_that_ends_an_mri_wait_is_journaled_and_replays(tmp_path: Path) -> None:
    service, clock = make_service("itb-40", directory=tmp_path)  # resumes on interrogation
    c = set_up_running(service)
    service.inject(cmd.MriStart())
    clock.advance(timedelta(minutes=30))
    service.inject(cmd.MriEnd())
    clock.advance(timedelta(hours=30))  # past the recovery: waiting for an interrogation
    service.advance()
    assert service.pump.awaiting_interrogation
    assert c.command("read_status")["resumed_after_mri"] is True
    restored = PumpController.restore(FileMemory(tmp_path), "itb-40")
    assert not restored.awaiting_interrogation
    assert restored.to_dict() == service.pump.to_dict()


def test_an_encoded_value_is_spliced_byte_for_byte() -> None:
    from openitb.telemetry import cbor

    value = {"b": [1.5, {"x": None, "yy": True}], "a": "text", "ccc": -7}
    payload = {"ok": True, "zz": cbor.Encoded(value), "request_seq": 3}
    assert cbor.dumps(payload) == cbor2.dumps({**payload, "zz": value}, canonical=True)
    frame = encode(Frame(MessageType.RESPONSE, 1, payload), KEYS[Role.CLINICIAN])
    assert split(frame).open(KEYS[Role.CLINICIAN]).payload["zz"] == value
