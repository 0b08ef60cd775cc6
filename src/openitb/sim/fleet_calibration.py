"""The fleet held against published figures: the fleet rows of the calibration table
(``data/calibration.toml``, docs/calibration.md), and the published value of each rate that
``itb fleet run`` prints beside the study's own.

The calibration study is the fleet defaults (data/fleet.toml) for 1,000 patients over 3 years
with two policies (low alarm 2 mL and 4 mL, refill 7 days before), plus a catheter-only run (no
missed visits, no pocket fills) to count what catheter faults alone cause. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np

from openitb.errors import InvalidInput
from openitb.sim.fleet import DRUG_EVENTS, Draws, draw, simulate, study_days
from openitb.sim.study import Study, parse_study

CALIBRATION_STUDY = {
    "name": "calibration", "patients": 1000, "years": 3.0, "seed": 20261128,
    "policies": [{"name": "2 mL, 7 days", "low_alarm_ml": 2, "lead_days": 7},
                 {"name": "4 mL, 7 days", "low_alarm_ml": 4, "lead_days": 7}],
}
LARGE_FLOW_ERROR_PCT = 10.0


@dataclass(frozen=True)
class Published:
    """A published rate to print beside a fleet study's own (per 100 patient-years unless the
    unit says otherwise)."""

    label: str
    value: str
    source: str


# What ``itb fleet run`` prints beside each study's rates (sources in docs/calibration.md).
PUBLISHED: Mapping[str, Published] = {
    "drug_events": Published("drug-related adverse events / 100 PY", "about 5 (1-10)",
                             "Borrini 2014"),
    "catheter_fault": Published("catheter faults / 100 PY", "3-8", "Benedicic 2023; Borrini 2014"),
    "pocket_fill": Published("pocket fills / 1,000 refills", "0.3 (2 in ~7,000)", "Truex 2020"),
    "withdrawal_reported_above_2ml": Published(
        "withdrawal, pump reporting > 2 mL / 100 PY", "occurs at 2 mL, not at 4 mL",
        "Neurosurgery 2004;55:390"),
}


def published_rates(counts: Mapping[str, int], patient_years: float) -> dict[str, float]:
    """The study's value of each ``PUBLISHED`` rate, in the unit of its label."""
    per_100 = 100.0 / patient_years
    return {
        "drug_events": sum(counts[k] for k in DRUG_EVENTS) * per_100,
        "catheter_fault": counts["catheter_fault"] * per_100,
        "pocket_fill": counts["pocket_fill"] / max(counts["refill"], 1) * 1000.0,
        "withdrawal_reported_above_2ml": counts["withdrawal_reported_above_2ml"] * per_100,
    }


@cache
def _study() -> Study:
    return parse_study(dict(CALIBRATION_STUDY))


@cache
def _draws() -> Draws:
    return draw(_study())


@cache
def _run(policy: int) -> dict[str, int]:
    s = _study()
    return simulate(_draws(), s, s.policies[policy])


@cache
def _catheter_only() -> dict[str, int]:
    s = _study().model_copy(update={"refills": _study().refills.model_copy(
        update={"miss_probability": 0.0, "pocket_fill_probability": 0.0})})
    return simulate(draw(s), s, s.policies[1])


def _patient_years() -> float:
    s = _study()
    return s.patients * study_days(s) / 365.25


def _flow_error_pct() -> np.ndarray:
    d = _draws()
    return np.asarray((d.stroke_by_refill_nl / d.nominal_nl[:, None] - 1.0) * 100.0)


def _reported_ratio() -> float:
    at2 = _run(0)["withdrawal_reported_above_2ml"]
    at4 = _run(1)["withdrawal_reported_above_2ml"]
    return float(at4 / at2) if at2 else float("nan")


MEASURES: Mapping[str, Callable[[], float]] = {
    "drug_events_per_100py": lambda: published_rates(_run(0), _patient_years())["drug_events"],
    "catheter_faults_per_py": lambda: _run(0)["catheter_fault"] / _patient_years(),
    "severe_withdrawals_per_catheter_fault": lambda: (
        _catheter_only()["withdrawal_severe"] / max(_catheter_only()["catheter_fault"], 1)),
    "pocket_fills_per_refill": lambda: _run(0)["pocket_fill"] / max(_run(0)["refill"], 1),
    "flow_error_mean_pct": lambda: float(np.mean(_flow_error_pct())),
    "flow_error_beyond_10pct": lambda: float(np.mean(
        np.abs(_flow_error_pct()) > LARGE_FLOW_ERROR_PCT)),
    "withdrawal_reported_above_2ml_at_2ml": lambda: (
        _run(0)["withdrawal_reported_above_2ml"] / _patient_years() * 1000.0),
    "withdrawal_reported_above_2ml_4ml_vs_2ml": _reported_ratio,
}


def compute(row_id: str) -> float:
    """The fleet's value for one fleet row."""
    if row_id not in MEASURES:
        raise InvalidInput("row", row_id, "one of " + ", ".join(MEASURES))
    return MEASURES[row_id]()
