from __future__ import annotations

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


def test_file_memory_round_trip(tmp_path: Path) -> None:
    mem = FileMemory(tmp_path)
    p = running_pump(memory=mem)
    p.advance(days(10))
    q = PumpController.restore(FileMemory(tmp_path), "itb-40")
    assert q.to_dict() == p.to_dict()
    assert q.alarms.active("memory_error") is None


def test_in_memory_power_loss_keeps_every_acknowledged_command() -> None:
    mem = InMemory()
    p = running_pump(memory=mem)
    p.advance(days(3))
    assert p.handle(cmd.Stop()).ok  # fsynced before it acted
    acknowledged = p.to_dict()
    p.advance(days(4))  # time passing is journaled without an fsync
    p.handle(cmd.ReadStatus())
    mem.power_loss()
    after = PumpController.restore(mem, "itb-40")
    assert after.to_dict() == acknowledged  # the reads and the time are lost, nothing else
    assert not after.running and after.alarms.active("memory_error") is None
    assert T0 < days(3)
