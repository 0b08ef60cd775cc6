"""`itb fleet run`: the risk of refill policies over many virtual patient-years."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openitb.commands.calc import guarded
from openitb.errors import InvalidInput
from openitb.sim.fleet_plot import plot_policies
from openitb.sim.fleet_runner import PolicyResult, run_study, write_parquet
from openitb.sim.study import load_study

app = typer.Typer(help="Fleet studies: refill policies over thousands of virtual patient-years.",
                  no_args_is_help=True)

TABLE = {"low_alarm": "low alarm", "empty_reservoir": "empty", "reservoir_dry": "dry (true)",
         "withdrawal_early": "withdrawal early", "withdrawal_severe": "withdrawal severe",
         "overdose_drowsiness": "overdose drowsy", "overdose_respiratory": "overdose resp.",
         "unplanned_visit": "unplanned visits"}


def _table(results: list[PolicyResult]) -> Table:
    t = Table(title="events per 1,000 patient-years, 95 % interval below")
    t.add_column("policy")
    for label in TABLE.values():
        t.add_column(label, justify="right")
    for r in results:
        t.add_row(r.policy, *(f"{r.rates[k].per_1000_py:.1f}\n{r.rates[k].low:.0f}-{r.rates[k].high:.0f}"
                              for k in TABLE))
    return t


@app.command("run")
@guarded
def run_cmd(
    study_file: Path = typer.Argument(..., help="Study TOML (see docs/fleet.md)."),
    patients: int | None = typer.Option(None, "--patients", help="Override the number of patients."),
    years: float | None = typer.Option(None, "--years", help="Override the study length."),
    seed: int | None = typer.Option(None, "--seed", help="Override the seed."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786; default: local processes."),
    workers: int | None = typer.Option(None, "--workers", help="Local worker processes (default: one per core)."),
    partition: int | None = typer.Option(None, "--partition", help="Patients per task "
                                         "(default: equal tasks, the same number per worker)."),
    out: Path = typer.Option(Path("fleet-out"), "--out", help="Directory for results.parquet, results.json and policies.png."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    study = load_study(study_file).with_overrides(patients=patients, years=years, seed=seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput("out", str(out), f"a directory that can be created ({exc})") from None
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=as_json) as bar:
        task = bar.add_task(f"{study.name}: {study.patients:,} patients × {study.years:g} years "
                            f"× {len(study.policies)} policies", total=None)
        results = run_study(study, scheduler=scheduler, workers=workers, partition_size=partition,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    write_parquet(results, out / "results.parquet")
    plot_policies(results, out / "policies.png", study.name)
    doc = {"study": study.name, "patients": study.patients, "years": study.years,
           "seed": study.seed, "results": [asdict(r) for r in results],
           "files": {k: str(out / v) for k, v in (("parquet", "results.parquet"),
                                                   ("plot", "policies.png"),
                                                   ("json", "results.json"))}}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    tmp.replace(out / "results.json")
    if as_json:
        typer.echo(json.dumps(doc))
    else:
        Console(width=max(Console().width, 150)).print(_table(results))
        Console().print(f"written: {out / 'results.parquet'}, {out / 'policies.png'}, {out / 'results.json'}")
