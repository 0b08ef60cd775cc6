from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.pump.eventlog import EventLog
from openitb.pump.memory import FileMemory, InMemory

from .helpers import T0, days, running_pump


def _log(n: int, capacity: int = 1000) -> EventLog:
    log = EventLog(capacity)
    for i in range(n):
        log.append(f"t{i}", "e", {"i": i})
    return log


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 50), st.data())
def test_chain_verifies_and_tampering_detected(n: int, capacity: int, data: st.DataObject) -> None:
    log = _log(n, capacity)
    assert log.verify() == (True, "ok")
    assert len(log.entries) == min(n, capacity) and log.dropped == max(0, n - capacity)
    i = data.draw(st.integers(0, len(log.entries) - 1))
    how = data.draw(st.sampled_from(["alter", "remove", "swap"]))
    if how == "alter":
        log.entries[i]["data"] = {"i": -1}
    elif how == "remove":
        log.entries.pop(i)
    else:
        if len(log.entries) < 2:
            return
        j = (i + 1) % len(log.entries)
        log.entries[i], log.entries[j] = log.entries[j], log.entries[i]
    assert not log.verify()[0]


def test_paged_reads() -> None:
    log = _log(25)
    assert [e["seq"] for e in log.read(2, 10)] == [20, 21, 22, 23, 24]
    assert log.pages(10) == 3
    p = running_pump()
    r = p.handle(cmd.ReadLog(0, 2))
    assert r.ok and len(r.data["entries"]) == 2
    assert not p.handle(cmd.ReadLog(-1, 2)).ok


def test_file_memory_round_trip_and_corruption(tmp_path: Path) -> None:
    mem = FileMemory(tmp_path)
    p = running_pump(memory=mem)
    p.advance(days(10))
    q = PumpController.restore(mem, "itb-40", days(10))
    assert q.to_dict() == p.to_dict()
    assert mem.read_journal() == []  # the journal holds only an operation in progress
    doc = json.loads(mem.snapshot_path.read_text())
    doc["state"]["delivered_nl"] += 1
    mem.snapshot_path.write_text(json.dumps(doc))
    bad = PumpController.restore(mem, "itb-40", days(10))
    assert bad.alarms.active("memory_error") is not None
    assert bad.state == "stopped" and bad.prescription is None
    mem.snapshot_path.write_text("{not json")
    assert PumpController.restore(mem, "itb-40", days(10)).alarms.active("memory_error")


def test_in_memory_restore_gives_before_or_after_each_command() -> None:
    mem = InMemory()
    p = running_pump(memory=mem)
    p.advance(days(3))
    saved = mem.snapshot
    p.handle(cmd.Stop())
    after = PumpController.restore(mem, "itb-40", days(3))
    assert after.to_dict() == p.to_dict()
    mem.snapshot = saved  # a crash before the command's write: the state before it
    before = PumpController.restore(mem, "itb-40", days(3))
    assert before.running and before.delivered_nl == p.delivered_nl
    assert T0 < days(3)
