"""The patient model held against published figures: one measure per row of the calibration
table (``data/calibration.toml``, rendered in docs/calibration.md).

Each measure is a function of the packaged parameters only (named patients at their typical
values, or a seeded population), so the table's "after" column can be recomputed and checked at
any time (tests/unit/physiology/test_calibration.py). Fleet rows are in ``sim/fleet_calibration``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from openitb.errors import InvalidInput
from openitb.physiology.measures import (
    bolus_measures,
    first_crossing,
    infusion_measures,
    series,
    steady_state_measures,
)
from openitb.physiology.model import (
    INTRATHECAL,
    N_INPUTS,
    SUBCUTANEOUS,
    build_system,
    readouts,
    steady_state,
)
from openitb.physiology.params import Patients, catalog, patient, population
from openitb.physiology.population import overdose_signs_after_bolus, screening_responders
from openitb.physiology.titration import clinic_dose

POPULATION_N = 1000
POPULATION_SEED = 0
POCKET_FILL_MG = 60.0  # 30 mL of 2000 mcg/mL (Truex et al. 2020: about 60 mg aspirated)


@dataclass(frozen=True)
class Row:
    """One row of the calibration table."""

    id: str
    measure: str
    published: str
    low: float
    high: float
    unit: str
    source: str
    before: str
    after: float
    status: str  # "inside" or "outside"
    reason: str
    command: str

    def inside(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)


def load_rows(text: str | None = None) -> list[Row]:
    """The calibration table (the packaged ``calibration.toml`` unless ``text`` is given)."""
    if text is None:
        text = resources.files("openitb.data").joinpath("calibration.toml").read_text("utf-8")
    rows = []
    for i, r in enumerate(tomllib.loads(text)["row"]):
        where = f"row[{i}]"
        try:
            row = Row(str(r["id"]), str(r["measure"]), str(r["published"]), float(r["low"]),
                      float(r["high"]), str(r["unit"]), str(r["source"]), str(r["before"]),
                      float(r["after"]), str(r["status"]), str(r.get("reason", "")),
                      str(r["command"]))
        except KeyError as exc:
            raise InvalidInput(f"{where}.{exc.args[0]}", None, "every field of a row") from None
        if row.status not in ("inside", "outside") or (row.status == "outside" and not row.reason):
            raise InvalidInput(f"{where}.status", row.status,
                               "'inside', or 'outside' with a reason")
        if math.isnan(row.low) or math.isnan(row.high) or row.low > row.high:
            raise InvalidInput(f"{where}.low", row.low, "a range with low <= high")
        rows.append(row)
    return rows


# ---- the measures ---------------------------------------------------------------------------
def _typical(name: str = "adult_sci") -> Patients:
    return patient(name)


@cache
def _population(name: str) -> Patients:
    return population(POPULATION_N, np.random.default_rng(POPULATION_SEED), name)


def _css_lumbar(patients: Patients, dose_per_day: np.ndarray | float) -> np.ndarray:
    system = build_system(patients)
    rates = np.zeros((len(patients), N_INPUTS))
    rates[:, INTRATHECAL] = np.broadcast_to(np.asarray(dose_per_day, float) / 24.0, len(patients))
    return np.asarray(readouts(system, steady_state(system, rates))["csf_lumbar_ng_per_ml"])


@cache
def _bolus50() -> Any:
    return bolus_measures(_typical(), 50.0)


@cache
def _infusion100() -> Any:
    return infusion_measures(_typical(), 100.0)


def _clearance() -> float:
    dose = 400.0
    return float(dose / 24.0 / _css_lumbar(_typical(), dose)[0] * 1000.0)


def _lumbar_cisternal() -> float:
    system = build_system(_typical())
    ro = readouts(system, steady_state(system, np.array([400.0 / 24.0, 0.0])))
    return float(ro["csf_lumbar_ng_per_ml"][0] / ro["csf_cisternal_ng_per_ml"][0])


@cache
def _withdrawal_after_stop() -> tuple[float, float]:
    """Hours from a pump stopping (adult at steady state on 400 mcg/day) to early signs and to
    the severe syndrome."""
    pts = _typical()
    system = build_system(pts)
    x0 = steady_state(system, np.array([400.0 / 24.0, 0.0]))
    times = np.arange(0.0, 96.0 + 1e-9, 0.1)
    w = series(system, times, np.zeros((times.size - 1, N_INPUTS)), ("withdrawal",), x0)
    d = catalog().definitions
    early = first_crossing(times, w["withdrawal"], np.array([d.withdrawal_early]))[0]
    severe = first_crossing(times, w["withdrawal"], np.array([d.withdrawal_severe]))[0]
    return float(early), float(severe)


@cache
def _pocket_fill() -> tuple[float, float]:
    """Peak overdose severity and hours to respiratory depression after ~60 mg goes into the
    pocket of the typical adult on the dose a clinic titrates to (inf when never reached)."""
    pts = _typical()
    system = build_system(pts)
    rate = float(clinic_dose(pts)[0]) / 24.0
    x0 = steady_state(system, np.array([rate, 0.0]))
    times = np.concatenate([[0.0, 1.0 / 60.0], np.arange(1.0 / 12.0, 48.0 + 1e-9, 1.0 / 12.0)])
    rates = np.zeros((times.size - 1, N_INPUTS))
    rates[:, INTRATHECAL] = rate
    rates[0, SUBCUTANEOUS] = POCKET_FILL_MG * 1000.0 * 60.0
    od = series(system, times, rates, ("overdose",), x0)["overdose"]
    level = catalog().definitions.overdose_respiratory
    hours = first_crossing(times, od, np.array([level]))[0]
    return float(od.max()), float(math.inf if math.isnan(hours) else hours)


def _median_dose(name: str) -> float:
    return float(np.median(clinic_dose(_population(name))))


MEASURES: Mapping[str, Callable[[], float]] = {
    "bolus_half_life": lambda: float(_bolus50().csf_half_life_hours[0]),
    "csf_clearance": _clearance,
    "steady_state_90pct": lambda: float(steady_state_measures(_typical(), 400.0).hours_to_90pct[0]),
    "csf_at_50": lambda: float(_css_lumbar(_typical(), 50.0)[0]),
    "csf_at_1200": lambda: float(_css_lumbar(_typical(), 1200.0)[0]),
    "csf_at_maintenance_dose": lambda: float(np.median(_css_lumbar(
        _population("adult_sci"), clinic_dose(_population("adult_sci"))))),
    "lumbar_cisternal_ratio": _lumbar_cisternal,
    "bolus_onset": lambda: float(_bolus50().effect_onset_hours[0]),
    "bolus_peak": lambda: float(_bolus50().effect_peak_hours[0]),
    "bolus_duration": lambda: float(_bolus50().effect_duration_hours[0]),
    "infusion_onset": lambda: float(_infusion100().effect_onset_hours[0]),
    "infusion_90pct": lambda: float(_infusion100().effect_90pct_hours[0]),
    "withdrawal_early": lambda: _withdrawal_after_stop()[0],
    "withdrawal_severe": lambda: _withdrawal_after_stop()[1],
    "screening_responders_spinal": lambda: float(np.mean(screening_responders(
        _population("adult_sci")))),
    "screening_responders_cerebral": lambda: float(np.mean(screening_responders(
        _population("child_cp")))),
    "maintenance_dose_spinal": lambda: _median_dose("adult_sci"),
    "maintenance_dose_ms": lambda: _median_dose("adult_ms"),
    "maintenance_dose_child": lambda: _median_dose("child_cp"),
    "pocket_fill_60mg_severity": lambda: _pocket_fill()[0],
    "pocket_fill_60mg_hours": lambda: _pocket_fill()[1],
    "overdose_signs_after_50mcg": lambda: float(np.mean(overdose_signs_after_bolus(
        _population("adult_sci"), 50.0))),
}


def compute(row_id: str) -> float:
    """The model's value for one physiology row."""
    if row_id not in MEASURES:
        raise InvalidInput("row", row_id, "one of " + ", ".join(MEASURES))
    return MEASURES[row_id]()


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "-" if x < 0 else "no limit"
    return f"{x:.4g}"


def markdown_table(rows: list[Row]) -> str:
    """The table of docs/calibration.md, from the rows (a test keeps the two the same)."""
    lines = ["| # | measure | published (source) | range checked | before | after | |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(rows, start=1):
        high = "" if r.high >= 1e9 else _fmt(r.high)
        rng = f"> {_fmt(r.low)}" if not high else f"{_fmt(r.low)}-{high}"
        verdict = "inside" if r.status == "inside" else "**outside** (see below)"
        lines.append(f"| {i} | {r.measure} (`{r.id}`) | {r.published} ({r.source}) | {rng} "
                     f"{r.unit} | {r.before} | {_fmt(r.after)} | {verdict} |")
    return "\n".join(lines)
