"""docs/threat-model.md cannot rot: at least 30 threats, each naming a test that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \| (tests/\S+\.py::\w+) \|$")
ENTRY_POINTS = ("frame parser", "handshake", "each command", "programmer side", "TCP transport",
                "key files", "state directory", "CLI and file inputs")


def rows() -> list[tuple[str, ...]]:
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    return [m.groups() for line in text.splitlines() if (m := ROW.match(line.strip()))]


def test_at_least_30_threats_numbered_with_mitigation_and_test() -> None:
    table = rows()
    assert len(table) >= 30
    assert [int(r[0]) for r in table] == list(range(1, len(table) + 1))
    for _, _entry, actor, threat, mitigation, _ in table:
        assert len(threat) > 10 and len(mitigation) > 10 and actor
    for entry in ENTRY_POINTS:
        assert any(r[1] == entry for r in table), f"no threat listed for {entry}"


def test_every_named_test_is_collected_by_pytest() -> None:
    ids = sorted({r[5] for r in rows()})
    files = sorted({i.split("::")[0] for i in ids})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "--collect-only", "-q", "-p",
         "no:cacheprovider", "--import-mode=importlib", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = {line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    # A hypothesis state machine is collected as ``name::runTest``.
    missing = [i for i in ids if i not in collected
               and not any(c.startswith(i + "::") for c in collected)]
    assert not missing, f"docs/threat-model.md names tests that do not exist: {missing}\n{proc.stderr}"
