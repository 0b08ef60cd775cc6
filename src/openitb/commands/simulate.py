"""`itb simulate SCENARIO.toml`: pump and virtual patient together (an adapter over openitb.sim)."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from openitb.commands.calc import emit, guarded
from openitb.errors import InvalidInput
from openitb.reports.scenario_plot import plot
from openitb.sim.runner import SimResult, run_scenario
from openitb.sim.scenario import parse_scenario


def load_scenario_file(path: Path) -> Any:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("scenario", str(path), "an existing scenario TOML file") from None
    except IsADirectoryError:
        raise InvalidInput("scenario", str(path), "a scenario TOML file, not a directory") from None
    except UnicodeDecodeError:
        raise InvalidInput("scenario", str(path), "a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("scenario", str(path), f"valid TOML ({exc})") from None
    return parse_scenario(doc)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v



# CSV column names carry their unit or scale: the model's series names already end in one
# (_h, _ng_per_ml, _mcg_per_h, _ml); the scores without a unit get their scale.
CSV_COLUMNS = {
    "mas": "mas_0_to_4",  # Modified Ashworth Scale, the model's continuous score
    "mas_drop": "mas_drop_0_to_4",  # fall in MAS from the untreated baseline
    "withdrawal": "withdrawal_severity_0_to_1",  # 0 none, 1 the most severe the model knows
    "overdose": "overdose_severity_0_to_1",
}


def csv_header(keys: list[str]) -> list[str]:
    return [CSV_COLUMNS.get(k, k) for k in keys]


def write_csv(result: SimResult, path: Path) -> None:
    """The time series at full precision (each float as its shortest exact repr, so that it
    reads back bit for bit), units or scales in the column names; written atomically."""
    cols = result.table()
    keys = list(cols)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(csv_header(keys))
        for i in range(len(cols["time_h"])):
            w.writerow([repr(float(cols[k][i])) for k in keys])
    tmp.replace(path)


@guarded
def simulate_cmd(
    scenario: Path = typer.Argument(..., help="Scenario TOML (see scenarios/)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    plot_file: Path | None = typer.Option(None, "--plot", help="Write a PNG plot."),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write the time series as CSV."),
) -> None:
    """Run a scenario: pump, catheter and patient on a virtual clock."""
    sc = load_scenario_file(scenario)
    console = Console(stderr=True)
    if sc.days > 60 and not as_json:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(f"simulating {sc.days:g} days", total=1.0)
            result = run_scenario(sc, lambda f: bar.update(task, completed=f))
    else:
        result = run_scenario(sc)
    if plot_file is not None:
        plot(result, plot_file)
    if csv_file is not None:
        write_csv(result, csv_file)
    summary = _clean(result.summary())
    if as_json:
        print(json.dumps(summary))
        return
    shown = dict(summary)
    shown["alarms"] = [f"day {a['day']:g}: {a['kind']}" for a in summary["alarms"]] or ["none"]
    shown["events"] = [f"day {e['day']:g}: {e['label']}" + ("" if e["ok"] else f" REFUSED: {e['reason']}")
                       for e in summary["events"]]
    if "screening" in shown:
        sc_out = shown.pop("screening")
        for k, v in sc_out.items():
            shown[f"screening.{k}"] = v if k != "doses" else [
                f"day {r['day']:g} {r['dose_mcg']:g} mcg: MAS {r['mas_before']} -> {r['mas_after']}"
                f" (effect {r['effect_hours']} h)" for r in v]
    emit(shown, False, f"itb simulate: {sc.name}")
