"""The pump's write-ahead memory: replay gives exactly the last journaled state, damage is
recovered from or refused loudly, never a silent factory reset; every file checked by schema."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, zero_error_pump
from openitb.pump.journal import decode_command, encode_command
from openitb.pump.memory import (
    JOURNAL,
    SNAPSHOT,
    SNAPSHOT_PREV,
    FileMemory,
    InMemory,
    MemoryUnrecoverable,
    MemoryWriteFailed,
    canonical,
    line_sum,
    parse_line,
)
from openitb.therapy.prescription import Continuous, Flex, FlexStep
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import T0, days, running_pump

OPS = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 3 * 86_400)),
    st.tuples(st.just("refill"), st.integers(1, 40)),
    st.tuples(st.just("program"), st.integers(20, 900)),
    st.tuples(st.just("flex"), st.integers(20, 400)),
    st.tuples(st.just("start"), st.just(0)),
    st.tuples(st.just("stop"), st.just(0)),
    st.tuples(st.just("bolus"), st.integers(5, 200)),
    st.tuples(st.just("prime"), st.integers(1, 5)),
    st.tuples(st.just("read"), st.just(0)),
    st.tuples(st.just("low"), st.integers(1, 5)),
    st.tuples(st.just("ack"), st.just(0)),
    st.tuples(st.just("note"), st.integers(0, 9)),
    st.tuples(st.just("book"), st.integers(0, 9)),
    st.tuples(st.just("mri"), st.just(0)),
)


def apply(p: PumpController, op: str, n: int) -> None:
    c = McgPerMl(2000)
    if op == "advance":
        p.advance(p.now + __import__("datetime").timedelta(seconds=n))
    elif op == "refill":
        p.handle(cmd.Refill(Milliliters(n), c))
    elif op == "program":
        p.handle(cmd.Program(Continuous(McgPerDay(n)), c))
    elif op == "flex":
        p.handle(cmd.Program(Flex((FlexStep(0, McgPerDay(n)), FlexStep(7200, McgPerDay(n + 9)))),
                             c))
    elif op == "start":
        p.handle(cmd.Start())
    elif op == "stop":
        p.handle(cmd.Stop())
    elif op == "bolus":
        p.handle(cmd.ClinicianBolus(Micrograms(n), Hours(1)))
    elif op == "prime":
        p.handle(cmd.PrimingBolus(Milliliters(n / 10), Hours(2)))
    elif op == "read":
        p.handle(cmd.ReadStatus())
    elif op == "low":
        p.handle(cmd.SetLowAlarm(Milliliters(n)))
    elif op == "ack":
        p.handle(cmd.AcknowledgeAlarm("low_reservoir"))
    elif op == "note":
        p.note("patient_bolus", {"dose_mcg": n})
    elif op == "book":  # a patient-bolus book change: a write, bumps the state version
        p.note("patient_limits_set", {"dose_mcg": n}, changes_state=True)
    elif op == "mri":
        p.handle(cmd.MriEnd() if p.stalled else cmd.MriStart())


class Spy(FileMemory):
    """Real file memory that remembers the live state each record was written onto."""

    pump: PumpController | None = None

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.before: dict[int, dict[str, Any]] = {}

    def append(self, body: dict[str, Any], sync: bool) -> int:
        assert self.pump is not None
        self.before[self.seq + 1] = self.pump.to_dict()
        return super().append(body, sync)


def _live(directory: Path, ops: list[tuple[str, int]], every: int) -> tuple[PumpController, Spy]:
    mem = Spy(directory, every=every)
    p = zero_error_pump("itb-40", T0)
    mem.pump = p
    p.memory = mem
    p.checkpoint()
    for op, n in ops:
        apply(p, op, n)
    return p, mem


@settings(max_examples=60, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=40), st.integers(1, 12), st.data())
def test_restore_after_a_cut_journal_is_exactly_the_last_complete_record(
        ops: list[tuple[str, int]], every: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        p, mem = _live(d, ops, every)
        mem.close()
        raw = (d / JOURNAL).read_bytes()
        cut = data.draw(st.integers(0, len(raw)), label="cut")
        (d / JOURNAL).write_bytes(raw[:cut])  # the crash: the journal ends at any byte
        complete = [json.loads(x) for x in raw[:cut].split(b"\n") if x and _whole(x)]
        last = complete[-1]["seq"] if complete else mem.seq - len(raw.splitlines())
        expected = mem.before.get(last + 1, p.to_dict())
        restored = PumpController.restore(FileMemory(d), "itb-40")
        assert restored.alarms.active("memory_error") is None  # a torn tail is no damage
        # A read writes nothing: the radio charge of the reads before the first lost record
        # (carried by it) is all that is lost besides that record.
        nxt = [json.loads(x) for x in raw.split(b"\n") if x and json.loads(x)["seq"] == last + 1]
        restored._charge_telemetry(nxt[0].get("reads", 0) if nxt else p.unjournaled_reads)
        assert restored.to_dict() == expected
        assert restored.log.verify()[0]


def _whole(line: bytes) -> bool:
    try:
        parse_line(line)
        return True
    except ValueError:
        return False


STEPS = ["journal.write", "journal.fsync", "snapshot.write", "snapshot.fsync",
         "snapshot.rename", "journal.rotate", "snapshot.dirsync"]


@settings(max_examples=60, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=30), st.integers(1, 6), st.sampled_from(STEPS),
       st.integers(0, 40), st.lists(OPS, max_size=8))
def test_a_write_failing_at_any_step_changes_nothing_and_restore_agrees(
        ops: list[tuple[str, int]], every: int, step: str, nth: int,
        more: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        seen = {"n": 0, "failed": False, "armed": False}

        def fault(at: str) -> None:
            if at == step and seen["armed"] and not seen["failed"]:
                if seen["n"] == nth:
                    seen["failed"] = True
                    raise OSError(5, "Input/output error (injected)")
                seen["n"] += 1

        mem = FileMemory(d, every=every, fault=fault)
        p = zero_error_pump("itb-40", T0, memory=mem)
        p.checkpoint()
        seen["armed"] = True
        for op, n in ops + more:
            before = p.to_dict()
            try:
                apply(p, op, n)
            except MemoryWriteFailed:
                assert p.to_dict() == before  # the input was not applied
        mem.close()
        restored = PumpController.restore(FileMemory(d), "itb-40")
        assert restored.alarms.active("memory_error") is None
        restored._charge_telemetry(p.unjournaled_reads)  # the reads' charge since the last record
        assert restored.to_dict() == p.to_dict()


def _pump_with_history(d: Path) -> PumpController:
    p = running_pump(memory=FileMemory(d, every=5))
    for i in range(12):
        p.advance(days(i + 1))
        p.handle(cmd.Refill(Milliliters(30 + i % 5), McgPerMl(2000)))
        p.handle(cmd.ClinicianBolus(Micrograms(50), Hours(1)))
    p.handle(cmd.ReadStatus())
    p.advance(days(13))  # carries the read's radio charge into the journal ("reads")
    return p


@pytest.mark.parametrize("damage", ["corrupt", "emptied", "deleted", "altered", "bad schema"])
def test_a_damaged_snapshot_is_recovered_kept_aside_and_alarmed(tmp_path: Path,
                                                                damage: str) -> None:
    p = _pump_with_history(tmp_path)
    live = p.to_dict()
    snap = tmp_path / SNAPSHOT
    original = snap.read_bytes()
    if damage == "corrupt":
        snap.write_bytes(original[: len(original) // 2] + b"\x00garbage")
    elif damage == "emptied":
        snap.write_bytes(b"")
    elif damage == "deleted":
        snap.unlink()
    elif damage == "altered":
        doc = json.loads(original)
        doc["state"]["reservoir_estimate_nl"] += 1000
        snap.write_text(json.dumps(doc))
    else:
        doc = json.loads(original)
        doc["state"]["running"] = "yes"
        snap.write_text(json.dumps(doc))
    damaged = snap.read_bytes() if snap.exists() else None
    q = PumpController.restore(FileMemory(tmp_path), "itb-40")
    alarm = q.alarms.active("memory_error")
    assert alarm is not None and str(tmp_path / SNAPSHOT) in alarm.reason
    # the last known good state: program, reservoir, log and battery all kept, still running
    for key in ("prescription", "reservoir_estimate_nl", "filled_nl", "battery_used_uah", "t",
                "running", "catheter"):
        assert q.to_dict()[key] == live[key], key
    assert q.log.next_seq > live["log"]["next_seq"] and q.log.verify()[0]
    if damaged is not None:  # the evidence is kept aside, byte for byte
        assert (tmp_path / f"{SNAPSHOT}.damaged-0").read_bytes() == damaged
    # and a second start finds a sound memory: the alarm stays, nothing new is damaged
    again = PumpController.restore(FileMemory(tmp_path), "itb-40")
    assert again.to_dict() == q.to_dict()


def test_no_good_snapshot_refuses_naming_the_files_and_touches_nothing(tmp_path: Path) -> None:
    _pump_with_history(tmp_path)
    (tmp_path / SNAPSHOT).write_bytes(b"{}")
    (tmp_path / SNAPSHOT_PREV).unlink()
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    with pytest.raises(MemoryUnrecoverable) as exc:
        PumpController.restore(FileMemory(tmp_path), "itb-40")
    assert "snapshot.json: format: Field required" in str(exc.value)
    assert "factory" in str(exc.value)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before


def test_a_damaged_journal_line_restores_the_state_before_it_with_an_alarm(
        tmp_path: Path) -> None:
    p = running_pump(memory=FileMemory(tmp_path, every=10_000))
    states = []
    for i in range(5):
        states.append(p.to_dict())
        p.handle(cmd.Refill(Milliliters(20 + i), McgPerMl(2000)))
    lines = (tmp_path / JOURNAL).read_bytes().split(b"\n")
    k = len(lines) - 4  # the third refill (two more follow it; the list ends with "")
    lines[k] = lines[k].replace(b'"Refill"', b'"Refilx"')
    (tmp_path / JOURNAL).write_bytes(b"\n".join(lines))
    q = PumpController.restore(FileMemory(tmp_path), "itb-40")
    alarm = q.alarms.active("memory_error")
    assert alarm is not None and f"journal.jsonl line {k + 1}: checksum mismatch" in alarm.reason
    assert q.filled_nl == states[2]["filled_nl"]  # the state just before the bad line
    assert (tmp_path / f"{JOURNAL}.damaged-0").exists()


def test_a_journal_record_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(ValueError, match="to: Input should be a valid integer"):
        parse_line(b'{"seq":1,"op":"advance","before":"0123456789abcdef","to":"soon",'
                   b'"sum":"0123456789abcdef"}')
    with pytest.raises(ValueError, match="op"):
        parse_line(b'{"seq":1,"op":"format_disk","before":"0123456789abcdef",'
                   b'"sum":"0123456789abcdef"}')


def test_a_replay_that_diverges_is_caught_by_the_fingerprint() -> None:
    mem = InMemory()
    p = running_pump(memory=mem)
    p.advance(days(1))
    p.handle(cmd.Refill(Milliliters(30), McgPerMl(2000)))
    lines = mem.files[JOURNAL].split(b"\n")

    def resealed(rec: dict[str, Any]) -> bytes:
        body = {k: v for k, v in rec.items() if k != "sum"}
        return canonical({**body, "sum": line_sum(body)}).encode()

    refill = json.loads(lines[-2])
    altered = json.loads(lines[-2])
    altered["command"]["args"]["volume"]["value"] = 31.0  # well-formed, but not what happened
    # ... followed by a record written onto the true state: it cannot replay onto the altered one
    after = {**refill, "seq": refill["seq"] + 1}
    lines[-2] = resealed(altered)
    mem.files[JOURNAL] = b"\n".join(lines) + resealed(after) + b"\n"
    q = PumpController.restore(mem, "itb-40")
    alarm = q.alarms.active("memory_error")
    assert alarm is not None and "does not replay onto the state before it" in alarm.reason
    assert q.filled_nl == p.filled_nl - 30_000_000 + 31_000_000


def test_commands_round_trip_through_the_journal() -> None:
    for c in (cmd.Program(Continuous(McgPerDay(123.456)), McgPerMl(500)),
              cmd.Refill(Milliliters(18.5), McgPerMl(2000)), cmd.SetClock(days(3)),
              cmd.CatheterFault("kink", 12.5, 0.5), cmd.ReadLog(2, 10), cmd.Start()):
        assert decode_command(json.loads(json.dumps(encode_command(c)))) == c


def test_unwritable_memory_refuses_the_first_write_and_changes_nothing(tmp_path: Path) -> None:
    def fault(step: str) -> None:
        raise OSError(30, "Read-only file system")

    p = zero_error_pump("itb-40", T0, memory=FileMemory(tmp_path, fault=fault))
    before = p.to_dict()
    with pytest.raises(MemoryWriteFailed, match="Read-only"):
        p.handle(cmd.Refill(Milliliters(20), McgPerMl(2000)))
    assert p.to_dict() == before
    with pytest.raises(MemoryWriteFailed):
        FileMemory(tmp_path / "nope" / "x", fault=fault).checkpoint(before)


def test_a_record_that_cannot_be_cut_off_again_stops_all_writes_and_says_so(
        tmp_path: Path) -> None:
    bad = {"on": False}

    def fault(step: str) -> None:
        if bad["on"] and step in ("journal.fsync", "journal.truncate"):
            raise OSError(5, "Input/output error")

    p = running_pump(memory=FileMemory(tmp_path, fault=fault))
    bad["on"] = True
    with pytest.raises(MemoryWriteFailed, match="may apply it when it restarts"):
        p.handle(cmd.Stop())
    assert p.running  # not applied here ...
    with pytest.raises(MemoryWriteFailed, match="memory failed earlier"):
        p.handle(cmd.Start())  # ... and nothing more is written after it
    assert p.handle(cmd.ReadStatus()).ok  # a read writes nothing: the pump can be interrogated
    # on restart the record that did reach the file is applied: the answer said it might be
    assert not PumpController.restore(FileMemory(tmp_path), "itb-40").running
