"""The scenario runner's pump events go through the safety kernel: a refused one is logged with
the kernel's reason and changes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

from openitb.sim.runner import run_scenario
from openitb.sim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[3]


def _titration(extra: list[dict[str, object]]) -> dict[str, object]:
    doc = tomllib.loads((ROOT / "scenarios" / "titration_first_month.toml").read_text())
    doc["days"] = 4
    doc["events"] = extra
    return doc


def test_a_chained_jump_within_24h_is_refused_and_logged() -> None:
    # 150 -> 195 (+30 %) then -> 250 an hour later (+67 % from the 24 h reference 150).
    doc = _titration([
        {"day": 1, "kind": "program", "prescription": {"mode": "continuous", "dose": "195 mcg/day"}},
        {"day": 1.05, "kind": "program",
         "prescription": {"mode": "continuous", "dose": "250 mcg/day"}},
    ])
    r = run_scenario(parse_scenario(doc))
    first, second = (e for e in r.events if e["kind"] == "program")
    assert first["ok"] and first["classification"] == "within"
    assert not second["ok"] and second["refused_by"] == "safety kernel"
    assert "24 h reference" in second["reason"]


def test_a_stop_without_a_reason_is_refused_and_with_one_is_given() -> None:
    doc = _titration([{"day": 1, "kind": "stop"},
                      {"day": 2, "kind": "stop", "override_reason": "teaching: withdrawal"}])
    r = run_scenario(parse_scenario(doc))
    first, second = (e for e in r.events if e["kind"] == "stop")
    assert not first["ok"] and "stop of therapy" in first["reason"]
    assert second["ok"] and second["override_reason"] == "teaching: withdrawal"


def test_the_bridge_event_is_given_with_the_refill_by_the_kernel_plan() -> None:
    doc = tomllib.loads((ROOT / "scenarios" / "concentration_change_bridge.toml").read_text())
    doc["days"] = 21
    doc.pop("plot_days", None)
    r = run_scenario(parse_scenario(doc))
    refill = next(e for e in r.events if e["kind"] == "refill")
    bridge = next(e for e in r.events if e["kind"] == "bridge")
    assert refill["ok"] and refill["bridge"]["given"] and refill["bridge"]["unbridged_ml"] == 0
    assert bridge["ok"] and "kernel" in bridge["reason"]
