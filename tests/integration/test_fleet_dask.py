"""Fleet studies on real local Dask clusters: identical results whatever the worker count."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from openitb.cli import app
from openitb.sim.fleet_runner import run_local, run_study
from openitb.sim.study import parse_study

STUDY = {
    "name": "dask check", "patients": 240, "years": 0.5, "seed": 11,
    "catheter": {"occlusion_per_patient_year": 0.3, "disconnection_per_patient_year": 0.3},
    "policies": [{"name": "2/3", "low_alarm_ml": 2, "lead_days": 3},
                 {"name": "4/14", "low_alarm_ml": 4, "lead_days": 14}],
}


@pytest.mark.slow
def test_one_two_and_four_workers_give_identical_results() -> None:
    study = parse_study(STUDY)
    reference = run_local(study)
    assert sum(r.rates["catheter_fault"].count for r in reference) > 20  # events did happen
    for workers, size in ((1, 240), (2, 37), (4, 60), (2, None)):
        assert run_study(study, workers=workers, partition_size=size) == reference, workers


@pytest.mark.slow
def test_itb_fleet_run_writes_table_parquet_plot_and_json(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text('name = "cli"\npatients = 60\nyears = 0.25\nseed = 3\n'
                     '[[policies]]\nname = "2 mL, 7 days"\nlow_alarm_ml = 2\nlead_days = 7\n',
                     encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["fleet", "run", str(study), "--workers", "1", "--patients", "80",
                                 "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["patients"] == 80 and doc["results"][0]["policy"] == "2 mL, 7 days"
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert {row["outcome"] for row in table} >= {"empty_reservoir", "withdrawal_severe"}
    assert (out / "policies.png").stat().st_size > 10_000
    assert json.loads((out / "results.json").read_text())["seed"] == 3


def test_bad_scheduler_address_is_refused() -> None:
    example = Path(__file__).resolve().parents[2] / "studies" / "thresholds_and_lead_times.toml"
    r = CliRunner().invoke(app, ["fleet", "run", str(example),
                                 "--scheduler", "tcp://127.0.0.1:1", "--patients", "10"])
    assert r.exit_code == 2 and "scheduler" in r.output


@pytest.mark.slow
def test_a_fleet_run_prints_no_stray_warning_even_with_port_8787_taken(tmp_path: Path) -> None:
    """Dask's "Port 8787 is already in use" (another cluster, or anything, on the dashboard's
    default port) is not printed: the dashboard is off and the scheduler's HTTP endpoint is on a
    free port. Every Python warning is shown (PYTHONWARNINGS=always), in the workers too."""
    study = tmp_path / "s.toml"
    study.write_text('name = "quiet"\npatients = 40\nyears = 0.1\nseed = 2\n[[policies]]\n'
                     'name = "2 mL, 7 days"\nlow_alarm_ml = 2\nlead_days = 7\n', encoding="utf-8")
    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:
        pass  # something else already holds it: the same situation
    itb = Path(sys.executable).with_name("itb")
    try:
        r = subprocess.run([str(itb), "fleet", "run", str(study), "--workers", "1",
                            "--out", str(tmp_path / "out")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONWARNINGS": "always", "COLUMNS": "100"},
                           timeout=300)
    finally:
        holder.close()
    assert r.returncode == 0, r.stderr
    assert "events per 1,000 patient-years" in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    # Only the progress bar (its last frame) is on stderr: no warning, no log line.
    assert all("quiet: 40 patients" in ln for ln in lines), r.stderr
    assert "warn" not in r.stderr.lower() and "8787" not in r.stderr
