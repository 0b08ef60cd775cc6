"""Exports read back exactly: the simulation CSV at full precision with units or scales in its
column names; the fleet Parquet with typed policy parameters and units in its schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from openitb.cli import app
from openitb.commands.simulate import write_csv
from openitb.sim.fleet_runner import run_local, write_parquet
from openitb.sim.runner import run_scenario
from openitb.sim.study import Study

ROOT = Path(__file__).resolve().parents[3]


def test_simulation_csv_reads_back_bit_for_bit(tmp_path: Path) -> None:
    from openitb.commands.simulate import load_scenario_file

    result = run_scenario(load_scenario_file(ROOT / "scenarios" / "missed_refill.toml"))
    out = tmp_path / "s.csv"
    write_csv(result, out)
    df = pd.read_csv(out)
    table = result.table()
    assert list(df.columns)[0] == "time_h" and len(df) == len(table["time_h"])
    for raw, col in zip(table, df.columns, strict=True):
        np.testing.assert_array_equal(df[col].to_numpy(), np.asarray(table[raw]), err_msg=col)
    # every column names its unit or scale; 10-minute steps are not 0.166 or 0.167
    units = ("_h", "_ng_per_ml", "_mcg_per_h", "_ml", "_0_to_4", "_0_to_1")
    assert all(c.endswith(units) for c in df.columns), list(df.columns)
    assert {"withdrawal_severity_0_to_1", "overdose_severity_0_to_1", "mas_0_to_4"} <= set(df)
    assert df["withdrawal_severity_0_to_1"].between(0, 1).all()
    # the old writer's 6 significant digits would not have read back (so this test can fail)
    assert any(float(f"{v:.6g}") != v for col in table.values() for v in col)


def test_fleet_parquet_has_typed_policy_columns_and_units(tmp_path: Path) -> None:
    from openitb.sim.study import Policy, load_study

    base = load_study(ROOT / "studies" / "thresholds_and_lead_times.toml")
    study = base.with_overrides(patients=40, years=0.25, seed=1).model_copy(update={
        "policies": (Policy(name="2 mL, 3 days", low_alarm_ml=2, lead_days=3),
                     Policy(name="tight", low_alarm_ml=2.5, lead_days=10.5))})
    results = run_local(study)
    out = tmp_path / "r.parquet"
    write_parquet(results, out, study)
    table = pq.read_table(out)
    schema = table.schema
    assert str(schema.field("low_alarm_ml").type) == "double"
    assert str(schema.field("lead_days").type) == "double"
    assert str(schema.field("count").type) == "int64"
    assert schema.field("low_alarm_ml").metadata == {b"unit": b"mL"}
    assert schema.field("lead_days").metadata == {b"unit": b"d"}
    units = json.loads(schema.metadata[b"openitb.units"])
    assert units["per_1000_patient_years"] == "{events}/(1000.a)"
    assert Study.model_validate_json(schema.metadata[b"openitb.study"]) == study
    df = table.to_pandas()
    tight = df[df["policy"] == "tight"]
    assert set(tight["low_alarm_ml"]) == {2.5} and set(tight["lead_days"]) == {10.5}
    rate = {(r.policy, k): v.per_1000_py for r in results for k, v in r.rates.items()}
    for row in df.itertuples():
        assert row.per_1000_patient_years == rate[(row.policy, row.outcome)]  # full precision


def test_simulate_cli_csv(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    r = CliRunner().invoke(app, ["simulate", str(ROOT / "scenarios" / "missed_refill.toml"),
                                 "--csv", str(out)])
    assert r.exit_code == 0, r.output
    header, first, *_ = out.read_text().splitlines()
    assert header.startswith("time_h,") and len(first.split(",")) == len(header.split(","))
