"""`itb patient`: the virtual patient model on its own (no pump).

Definitions of onset, peak, duration and 90 % are in docs/physiology.md; the numbers come from
``openitb.physiology`` with the parameters of ``data/patients.toml``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from openitb.commands.calc import JSON, emit, guarded
from openitb.errors import InvalidInput
from openitb.physiology import calibration
from openitb.physiology.measures import bolus_measures, infusion_measures, steady_state_measures
from openitb.physiology.params import Patients, catalog, patient, population
from openitb.physiology.population import fraction_label, label_fractions
from openitb.units import McgPerDay, Micrograms, parse

app = typer.Typer(help="The virtual patient: CSF levels and effect of a dose.", no_args_is_help=True)

PATIENT = typer.Option(None, "--patient", help="Named patient (see `itb patient list`); "
                       "default the typical adult.")
TIP = typer.Option(None, "--tip", help="Catheter tip level, e.g. T10 (default: the patient's).")
LEVEL = typer.Option(None, "--level", help="Spinal level where the effect is read, e.g. C6 for "
                     "the arms (default: the patient's target, T12 for the legs).")


def _num(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 4)


def _one(name: str | None, tip: str | None, level: str | None = None) -> Patients:
    return patient(name, tip_level=tip, target_level=level)


@app.command("list")
@guarded
def list_cmd(as_json: bool = JSON) -> None:
    """The named example patients."""
    c = catalog()
    result: dict[str, Any] = {n: p.description for n, p in c.patients.items()}
    emit(result, as_json, f"itb patient list (default {c.default_patient})")


@app.command("steady-state")
@guarded
def steady_state_cmd(
    dose: str = typer.Option(..., "--dose", help="Continuous dose, e.g. '400 mcg/day'."),
    name: str | None = PATIENT, tip: str | None = TIP, as_json: bool = JSON,
) -> None:
    """Lumbar CSF concentration at steady state and the time to reach 90 % of it."""
    d = parse(dose, McgPerDay, "dose")
    m = steady_state_measures(_one(name, tip), d.value)
    emit({"csf_ng_per_ml": _num(m.csf_ng_per_ml[0]), "hours_to_90pct": _num(m.hours_to_90pct[0])},
         as_json, f"itb patient steady-state: {d}")


@app.command("bolus")
@guarded
def bolus_cmd(
    dose: str = typer.Option(..., "--dose", help="Bolus, e.g. '50 mcg'."),
    name: str | None = PATIENT, tip: str | None = TIP, level: str | None = LEVEL,
    as_json: bool = JSON,
) -> None:
    """A single bolus in a drug-naive patient: CSF peak and half-life, effect onset/peak/duration."""
    b = parse(dose, Micrograms, "dose")
    if not 0 < b.value <= 2000:
        raise InvalidInput("dose", dose, "a bolus above 0 and at most 2000 mcg")
    m = bolus_measures(_one(name, tip, level), b.value)
    emit({
        "csf_peak_ng_per_ml": _num(m.csf_peak_ng_per_ml[0]),
        "csf_half_life_hours": _num(m.csf_half_life_hours[0]),
        "effect_onset_hours": _num(m.effect_onset_hours[0]),
        "effect_peak_hours": _num(m.effect_peak_hours[0]),
        "effect_duration_hours": _num(m.effect_duration_hours[0]),
    }, as_json, f"itb patient bolus: {b}")


@app.command("infusion")
@guarded
def infusion_cmd(
    dose: str = typer.Option(..., "--dose", help="Continuous dose, e.g. '100 mcg/day'."),
    name: str | None = PATIENT, tip: str | None = TIP, level: str | None = LEVEL,
    as_json: bool = JSON,
) -> None:
    """A continuous infusion started in a drug-naive patient: effect onset and 90 % time."""
    d = parse(dose, McgPerDay, "dose")
    if d.value <= 0:
        raise InvalidInput("dose", dose, "a dose above 0 mcg/day")
    m = infusion_measures(_one(name, tip, level), d.value)
    emit({"effect_onset_hours": _num(m.effect_onset_hours[0]),
          "effect_90pct_hours": _num(m.effect_90pct_hours[0])},
         as_json, f"itb patient infusion: {d}")


@app.command("population")
@guarded
def population_cmd(
    n: int = typer.Option(1000, "--n", help="Number of virtual patients (1 to 20000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the population."),
    name: str | None = PATIENT, as_json: bool = JSON,
) -> None:
    """Fractions of a seeded virtual population inside the published ranges."""
    if not 1 <= n <= 20_000:
        raise InvalidInput("n", n, "a number of patients from 1 to 20000")
    rng = np.random.default_rng(seed)
    f = label_fractions(population(n, rng, name), rng)
    shown = {k: (int(v) if k == "patients" else round(v, 4)) for k, v in f.items()}
    if not as_json:  # words for people; the codes stay in the JSON
        shown = {fraction_label(k): v for k, v in shown.items()}
    emit(shown, as_json, f"itb patient population: {n} patients around "
         f"{name or catalog().default_patient}, seed {seed}; share of patients inside each range")


def calibration_rows(measures: dict[str, Any]) -> list[dict[str, Any]]:
    """The calibration rows whose measure is in ``measures``, each with the model's value now."""
    out = []
    for row in calibration.load_rows():
        if row.id in measures:
            value = float(measures[row.id]())
            out.append({"id": row.id, "published": row.published, "low": row.low,
                        "high": row.high, "unit": row.unit, "model": round(value, 6),
                        "inside": row.inside(value), "listed": row.status})
    return out


def print_calibration(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps({"rows": rows}))
        return
    t = Table(title=title)
    for col, just in (("row", "left"), ("range", "right"), ("model", "right"), ("", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        high = "" if r["high"] >= 1e9 else f"{r['high']:.4g}"
        rng = f"> {r['low']:.4g}" if not high else f"{r['low']:.4g}-{high}"
        t.add_row(r["id"], f"{rng} {r['unit']}", f"{r['model']:.4g}",
                  "inside" if r["inside"] else "OUTSIDE (listed)" if r["listed"] == "outside"
                  else "OUTSIDE")
    Console(width=100).print(t)


@app.command("calibration")
@guarded
def calibration_cmd(as_json: bool = JSON) -> None:
    """The patient model against each published figure (docs/calibration.md)."""
    print_calibration(calibration_rows(dict(calibration.MEASURES)), as_json,
                      "itb patient calibration: the model against published figures")
