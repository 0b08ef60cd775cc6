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
from openitb.sim.fleet import OUTCOMES
from openitb.sim.fleet_calibration import PUBLISHED, published_rates
from openitb.sim.fleet_plot import plot_policies
from openitb.sim.fleet_runner import PolicyResult, poisson_interval, run_study, write_parquet
from openitb.sim.study import load_study

app = typer.Typer(help="Fleet studies: refill policies over thousands of virtual patient-years.",
                  no_args_is_help=True)

# The policy table: each column a rate per 1,000 patient-years (sum of the outcomes named).
TABLE = {"low alarm": ("low_alarm",), "dry (true)": ("reservoir_dry",),
         "withdr. early": ("withdrawal_early",), "withdr. severe": ("withdrawal_severe",),
         "overdose": ("overdose_drowsiness", "overdose_respiratory", "overdose_coma"),
         "unplanned": ("unplanned_visit",)}
WIDTH = 100  # the tables fit 100 columns


def _rate(r: PolicyResult, keys: tuple[str, ...]) -> str:
    count = sum(r.rates[k].count for k in keys)
    low, high = poisson_interval(count, r.patient_years)
    return f"{count / r.patient_years * 1000:.1f}\n{low:.0f}-{high:.0f}"


REST = ("every outcome (empty reservoir, catheter faults, pocket fills, coma ...), its count "
        "and exact interval, per policy: results.json and results.parquet")


def _table(results: list[PolicyResult]) -> Table:
    t = Table(title="events per 1,000 patient-years, 95 % interval below",
              caption=f"The table shows {len(TABLE)} of {len(OUTCOMES)} outcomes; {REST}.")
    t.add_column("policy")
    for label in TABLE:
        t.add_column(label, justify="right")
    for r in results:
        t.add_row(r.policy, *(_rate(r, keys) for keys in TABLE.values()))
    return t


def _published(results: list[PolicyResult]) -> dict[str, dict[str, object]]:
    """Each published rate with this study's value per policy."""
    values = [published_rates({k: v.count for k, v in r.rates.items()}, r.patient_years)
              for r in results]
    return {k: {"label": p.label, "published": p.value, "source": p.source,
                "study": {r.policy: round(v[k], 4) for r, v in zip(results, values, strict=True)}}
            for k, p in PUBLISHED.items()}


def _published_table(published: dict[str, dict[str, object]]) -> Table:
    t = Table(title="beside published figures (docs/calibration.md)")
    t.add_column("rate")
    t.add_column("published", justify="right")
    t.add_column("this study: first policy\n(range over policies)", justify="right")
    for p in published.values():
        study = list(p["study"].values())  # type: ignore[attr-defined]
        spread = f" ({min(study):.2g}-{max(study):.2g})" if len(study) > 1 else ""
        t.add_row(f"{p['label']}\n[dim]{p['source']}[/dim]", str(p["published"]),
                  f"{study[0]:.2g}{spread}")
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
    write_parquet(results, out / "results.parquet", study)
    plot_policies(results, out / "policies.png", study.name)
    doc = {"study": study.name, "patients": study.patients, "years": study.years,
           "seed": study.seed, "results": [asdict(r) for r in results],
           "published": _published(results),
           "files": {k: str(out / v) for k, v in (("parquet", "results.parquet"),
                                                   ("plot", "policies.png"),
                                                   ("json", "results.json"))}}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    tmp.replace(out / "results.json")
    if as_json:
        typer.echo(json.dumps(doc))
    else:
        console = Console(width=WIDTH)
        console.print(_table(results))
        console.print(_published_table(doc["published"]))  # type: ignore[arg-type]
        console.print(f"written: {out / 'results.parquet'}, {out / 'policies.png'}, "
                      f"{out / 'results.json'}")


@app.command("calibration")
@guarded
def calibration_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """The fleet against each published figure (the calibration study, docs/calibration.md)."""
    from openitb.commands.patient import calibration_rows, print_calibration
    from openitb.sim import fleet_calibration

    print_calibration(calibration_rows(dict(fleet_calibration.MEASURES)), as_json,
                      "itb fleet calibration: 1,000 patients x 3 years against published figures")
