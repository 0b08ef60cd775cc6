"""LoopKit-style fixtures for `itb calc`: every case's expected output was worked out by hand.

Each file in tests/fixtures/calc/ holds a list of cases {name, command, args, expected, why}
(plus an optional inline "prescription" table for refill, and an optional "xfail" reason). The
real CLI runs through Typer's CliRunner; numbers compare with pytest.approx, everything else
(strings, booleans, ISO 8601 date-times, null, lists) exactly.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openitb.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "calc"
COMMANDS = {"rate", "dose", "refill", "change", "discrepancy", "bridge", "priming", "first-dose"}
DATETIME_KEYS = {"start", "low_alarm_at", "empty_at", "refill_by"}
MIN_CASES = 60


def _load_cases() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            cases.append((f"{path.stem}:{case['name']}", case))
    return cases


CASES = _load_cases()


def _params() -> list[Any]:
    out = []
    for case_id, case in CASES:
        marks = []
        if case.get("xfail"):
            marks.append(pytest.mark.xfail(strict=True, reason=case["xfail"]))
        out.append(pytest.param(case, id=case_id, marks=marks))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    raise TypeError(f"unsupported TOML value {v!r}")


def to_toml(doc: dict[str, Any]) -> str:
    """Just enough TOML for a prescription: scalar keys, then arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, items in tables:
        for item in items:
            lines.append("")
            lines.append(f"[[{key}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def build_argv(case: dict[str, Any], tmp_path: Path) -> list[str]:
    argv = ["calc", case["command"]]
    for opt, value in case["args"].items():
        if value is True:
            argv.append(opt)
        elif value is False:
            continue
        else:
            argv.extend([opt, str(value)])
    if "prescription" in case:
        rx = tmp_path / "prescription.toml"
        rx.write_text(to_toml(case["prescription"]), encoding="utf-8")
        argv.extend(["--prescription", str(rx)])
    argv.append("--json")
    return argv


def assert_matches(key: str, actual: Any, expected: Any) -> None:
    if expected is None:
        assert actual is None, f"{key}: expected null, got {actual!r}"
    elif isinstance(expected, bool):
        assert actual is expected, f"{key}: expected {expected!r}, got {actual!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), (
            f"{key}: expected a number, got {actual!r}"
        )
        assert math.isfinite(actual), f"{key}: {actual!r} is not finite"
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), f"{key}: {actual!r} != {expected!r}"
    elif key in DATETIME_KEYS:
        assert isinstance(actual, str), f"{key}: expected an ISO 8601 string, got {actual!r}"
        assert actual == expected, f"{key}: {actual!r} != {expected!r}"
        a, e = datetime.fromisoformat(actual), datetime.fromisoformat(expected)
        assert a == e and a.utcoffset() == e.utcoffset(), key
    else:
        assert actual == expected, f"{key}: {actual!r} != {expected!r}"


def test_fixture_files_are_well_formed() -> None:
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} fixture cases loaded"
    names = [case_id for case_id, _ in CASES]
    assert len(names) == len(set(names)), "fixture case names must be unique per file"
    covered = set()
    for case_id, case in CASES:
        assert set(case) <= {"name", "command", "args", "prescription", "expected", "why", "xfail"}, case_id
        assert case["command"] in COMMANDS, case_id
        assert case["expected"], f"{case_id}: empty expected"
        assert isinstance(case["why"], str) and case["why"], f"{case_id}: a 'why' is required"
        assert "--json" not in case["args"], case_id
        covered.add(case["command"])
    assert covered == COMMANDS


@pytest.mark.parametrize("case", _params())
def test_calc_fixture(case: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, build_argv(case, tmp_path))
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n"
        f"exception: {result.exception!r}"
    )
    out = json.loads(result.stdout)
    assert isinstance(out, dict)
    for key, expected in case["expected"].items():
        assert key in out, f"{key} missing from {sorted(out)}"
        assert_matches(key, out[key], expected)
