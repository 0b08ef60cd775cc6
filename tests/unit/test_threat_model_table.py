"""docs/threat-model.md and docs/threat-model-memory.md cannot rot: numbered threats, each with
a mitigation and naming a test that exists (the link's table has an actor column, the memory's
not: its actors are named once above its table)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \| (tests/\S+\.py::\w+) \|$")
MEMORY_ROW = re.compile(r"^\| (\d+) \| (.+?) \| (.+?) \| (.+?) \| (tests/\S+\.py::\w+) \|$")
ENTRY_POINTS = ("frame parser", "handshake", "each command", "programmer side", "TCP transport",
                "key files", "state directory", "CLI and file inputs")


def rows() -> list[tuple[str, ...]]:
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    return [m.groups() for line in text.splitlines() if (m := ROW.match(line.strip()))]


def memory_rows() -> list[tuple[str, ...]]:
    text = (ROOT / "docs" / "threat-model-memory.md").read_text(encoding="utf-8")
    return [m.groups() for line in text.splitlines() if (m := MEMORY_ROW.match(line.strip()))]


def test_memory_threats_numbered_with_mitigation_and_test() -> None:
    table = memory_rows()
    assert len(table) >= 10
    assert [int(r[0]) for r in table] == list(range(1, len(table) + 1))
    for _, entry, threat, mitigation, _ in table:
        assert entry and len(threat) > 10 and len(mitigation) > 10


def test_at_least_30_threats_numbered_with_mitigation_and_test() -> None:
    table = rows()
    assert len(table) >= 30
    assert [int(r[0]) for r in table] == list(range(1, len(table) + 1))
    for _, _entry, actor, threat, mitigation, _ in table:
        assert len(threat) > 10 and len(mitigation) > 10 and actor
    for entry in ENTRY_POINTS:
        assert any(r[1] == entry for r in table), f"no threat listed for {entry}"


def test_every_named_test_is_collected_by_pytest() -> None:
    ids = sorted({r[5] for r in rows()} | {r[4] for r in memory_rows()})
    files = sorted({i.split("::")[0] for i in ids})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "--collect-only", "-q", "-p",
         "no:cacheprovider", "--import-mode=importlib", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = {line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    # A hypothesis state machine is collected as ``name::runTest``.
    missing = [i for i in ids if i not in collected
               and not any(c.startswith(i + "::") for c in collected)]
    assert not missing, f"the threat models name tests that do not exist: {missing}\n{proc.stderr}"
