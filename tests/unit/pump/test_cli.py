from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from openitb.cli import app

runner = CliRunner()
BASE = ["pump", "simulate", "--profile", "itb-40", "--concentration", "2000 mcg/mL",
        "--volume", "40 mL"]


def test_simulate_json() -> None:
    r = runner.invoke(app, [*BASE, "--dose", "800 mcg/day", "--days", "120", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [a["kind"] for a in out["alarms"]] == ["low_reservoir", "empty_reservoir"]
    assert out["alarms"][0]["raised_at"].startswith("2026-04-06")
    assert out["state"] == "empty" and out["reservoir_estimate_ml"] == 0
    assert {"delivered_ml", "delivered_mcg", "reservoir_ml", "battery_days_left"} <= set(out)


def test_simulate_events_prescription_and_plot(tmp_path: Path) -> None:
    rx = tmp_path / "rx.toml"
    rx.write_text('mode = "flex"\n[[steps]]\nstart = "00:00"\ndose = "600 mcg/day"\n'
                  '[[steps]]\nstart = "08:00"\ndose = "900 mcg/day"\n')
    ev = tmp_path / "ev.toml"
    ev.write_text('[[events]]\nday = 80\nkind = "refill"\nvolume = "40 mL"\n'
                  'concentration = "2000 mcg/mL"\n[[events]]\nday = 90\nkind = "mri_start"\n'
                  '[[events]]\nday = 90.1\nkind = "mri_end"\n'
                  '[[events]]\nday = 91\nkind = "bridge"\nvolume = "0.4 mL"\nduration = "2 h"\n'
                  '[[events]]\nday = 92\nkind = "occlusion"\n')
    png = tmp_path / "p.png"
    r = runner.invoke(app, [*BASE, "--prescription", str(rx), "--days", "100", "--seed", "3",
                            "--events", str(ev), "--json", "--plot", str(png), "--low-alarm", "3 mL"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert "motor_stall" in [a["kind"] for a in out["alarms"]]
    assert png.stat().st_size > 1000


def test_bad_input_exit_2() -> None:
    r = runner.invoke(app, [*BASE, "--dose", "800 mcg/day", "--days", "-1"])
    assert r.exit_code == 2
    r = runner.invoke(app, [*BASE, "--days", "5"])
    assert r.exit_code == 2
    r = runner.invoke(app, [*BASE[:-1], "50 mL", "--dose", "800 mcg/day", "--days", "5"])
    assert r.exit_code == 2 and "capacity" in r.stderr


def test_bad_event_kind_exit_2(tmp_path: Path) -> None:
    ev = tmp_path / "ev.toml"
    ev.write_text('[[events]]\nday = 1\nkind = "explode"\n')
    r = runner.invoke(app, [*BASE, "--dose", "800 mcg/day", "--days", "5", "--events", str(ev)])
    assert r.exit_code == 2 and "events[0].kind" in r.stderr
