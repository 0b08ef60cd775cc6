"""Clinical measures of the model, with the definitions of docs/physiology.md.

* **Lumbar CSF concentration**: at the lumbar puncture level (L3 by default). Caudal to the tip
  this equals the concentration of the tip region.
* **Time to 90 % (concentration)**: from the start of a constant infusion in a drug-naive patient
  until the lumbar CSF concentration first reaches 90 % of its steady-state value.
* **CSF half-life after a bolus**: from the lumbar CSF peak until it first falls to half the peak
  (apparent half-life, as measured in bolus studies).
* **Effect**: the drop of the Modified Ashworth Scale (MAS) from the patient's baseline.
* **Onset**: the first time the MAS drop reaches ``onset_mas_drop`` (0.5 points, a clinically
  noticeable change). No onset (``None``) when it never does.
* **Peak**: the time of the largest MAS drop after a bolus.
* **Duration**: from onset until the MAS drop falls back below ``onset_mas_drop`` for good.
* **Infusion 90 %**: the first time the MAS drop reaches 90 % of its steady-state value.

All measures are computed for many patients at once; the result arrays have one entry per
patient and NaN where a measure does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openitb.physiology.model import (
    INTRATHECAL,
    N_INPUTS,
    N_STATES,
    System,
    build_system,
    readouts,
    steady_state,
)
from openitb.physiology.params import Catalog, Patients, catalog
from openitb.physiology.solver import ExactSolver

Array = npt.NDArray[np.float64]

BOLUS_INJECTION_H = 1.0 / 60.0  # a screening bolus is injected over about a minute (R)


def series(system: System, times: Array, rates: Array, keys: tuple[str, ...],
           x0: Array | None = None, chunk: int = 256) -> dict[str, Array]:
    """Read-outs ``keys`` at every time point, (n, m+1) each, without keeping all states."""
    n, m1 = len(system), len(times)
    out = {k: np.empty((n, m1)) for k in keys}
    buf = np.empty((n, min(chunk, m1), N_STATES))
    start = 0
    fill = 0
    for x in ExactSolver(system).iterate(times, rates, x0):
        buf[:, fill] = x
        fill += 1
        if fill == buf.shape[1]:
            ro = readouts(system, buf[:, :fill])
            for k in keys:
                out[k][:, start:start + fill] = ro[k]
            start += fill
            fill = 0
    if fill:
        ro = readouts(system, buf[:, :fill])
        for k in keys:
            out[k][:, start:start + fill] = ro[k]
    return out


def cohort_series(system: System, times: Array, rates: Array, keys: tuple[str, ...],
                  x0: Array | None = None, quantiles: tuple[float, ...] = (0.05, 0.5, 0.95),
                  chunk: int = 128) -> tuple[dict[str, Array], dict[str, Array]]:
    """For many patients: the ``quantiles`` of each read-out across patients at every time point
    ((len(quantiles), m+1) per key) and each patient's maximum over time ((n,) per key), without
    keeping every patient's trajectory."""
    n, m1 = len(system), len(times)
    bands = {k: np.empty((len(quantiles), m1)) for k in keys}
    peaks = {k: np.full(n, -np.inf) for k in keys}
    buf = np.empty((n, min(chunk, m1), N_STATES))
    start = fill = 0

    def flush() -> None:
        ro = readouts(system, buf[:, :fill])
        for k in keys:
            bands[k][:, start:start + fill] = np.quantile(ro[k], quantiles, axis=0)
            np.maximum(peaks[k], ro[k].max(axis=1), out=peaks[k])

    for x in ExactSolver(system).iterate(times, rates, x0):
        buf[:, fill] = x
        fill += 1
        if fill == buf.shape[1]:
            flush()
            start += fill
            fill = 0
    if fill:
        flush()
    return bands, peaks


def first_crossing(t: Array, y: Array, level: Array) -> Array:
    """First time each row of ``y`` reaches ``level`` (linear interpolation); NaN if never."""
    above = y >= level[:, None]
    hit = above.any(axis=1)
    k = np.argmax(above, axis=1)
    out = np.full(y.shape[0], np.nan)
    rows = np.nonzero(hit)[0]
    for i in rows:
        j = int(k[i])
        if j == 0:
            out[i] = t[0]
            continue
        y0, y1 = y[i, j - 1], y[i, j]
        frac = (level[i] - y0) / (y1 - y0) if y1 != y0 else 1.0
        out[i] = t[j - 1] + frac * (t[j] - t[j - 1])
    return out


def last_crossing_down(t: Array, y: Array, level: Array) -> Array:
    """Last time each row of ``y`` is at or above ``level`` before falling below for good."""
    above = y >= level[:, None]
    out = np.full(y.shape[0], np.nan)
    for i in np.nonzero(above.any(axis=1))[0]:
        j = int(np.nonzero(above[i])[0][-1])
        if j + 1 >= t.size:
            out[i] = t[-1]
            continue
        y0, y1 = y[i, j], y[i, j + 1]
        frac = (y0 - level[i]) / (y0 - y1) if y0 != y1 else 0.0
        out[i] = t[j] + frac * (t[j + 1] - t[j])
    return out


def _constant(times: Array, it_rate: float) -> Array:
    r = np.zeros((times.size - 1, N_INPUTS))
    r[:, INTRATHECAL] = it_rate
    return r


@dataclass(frozen=True)
class SteadyStateMeasures:
    csf_ng_per_ml: Array
    hours_to_90pct: Array
    mas_drop: Array


def steady_state_measures(patients: Patients, dose_per_day: float, *,
                          horizon_h: float = 480.0, dt_h: float = 0.1) -> SteadyStateMeasures:
    system = build_system(patients)
    rate = dose_per_day / 24.0
    xss = steady_state(system, np.array([rate, 0.0]))
    ro = readouts(system, xss)
    times = np.arange(0.0, horizon_h + dt_h / 2, dt_h)
    s = series(system, times, _constant(times, rate), ("csf_lumbar_ng_per_ml",))
    t90 = first_crossing(times, s["csf_lumbar_ng_per_ml"], 0.9 * ro["csf_lumbar_ng_per_ml"])
    return SteadyStateMeasures(ro["csf_lumbar_ng_per_ml"], t90, ro["mas_drop"])


@dataclass(frozen=True)
class BolusMeasures:
    csf_peak_ng_per_ml: Array
    csf_half_life_hours: Array
    effect_peak_mas_drop: Array
    effect_onset_hours: Array
    effect_peak_hours: Array
    effect_duration_hours: Array


def bolus_measures(patients: Patients, dose_mcg: float, *, horizon_h: float = 48.0,
                   dt_h: float = 1.0 / 60.0, cat: Catalog | None = None) -> BolusMeasures:
    """A bolus of ``dose_mcg`` injected over a minute into a drug-naive patient."""
    c = cat or catalog()
    system = build_system(patients)
    times = np.concatenate([[0.0, BOLUS_INJECTION_H],
                            np.arange(dt_h, horizon_h + dt_h / 2, dt_h)[1:]])
    rates = np.zeros((times.size - 1, N_INPUTS))
    rates[0, INTRATHECAL] = dose_mcg / BOLUS_INJECTION_H
    s = series(system, times, rates, ("csf_lumbar_ng_per_ml", "mas_drop"))
    csf, drop = s["csf_lumbar_ng_per_ml"], s["mas_drop"]
    n = len(patients)
    ipk = np.argmax(csf, axis=1)
    peak = csf[np.arange(n), ipk]
    half = np.full(n, np.nan)
    for i in range(n):
        j = int(ipk[i])
        tail = csf[i:i + 1, j:]
        half[i] = first_crossing(times[j:], -tail, np.array([-peak[i] / 2]))[0] - times[j]
    level = np.full(n, c.definitions.onset_mas_drop)
    onset = first_crossing(times, drop, level)
    off = last_crossing_down(times, drop, level)
    jpk = np.argmax(drop, axis=1)
    return BolusMeasures(peak, half, drop[np.arange(n), jpk], onset, times[jpk], off - onset)


@dataclass(frozen=True)
class InfusionMeasures:
    steady_mas_drop: Array
    effect_onset_hours: Array
    effect_90pct_hours: Array


def infusion_measures(patients: Patients, dose_per_day: float, *, horizon_h: float = 480.0,
                      dt_h: float = 0.1, cat: Catalog | None = None) -> InfusionMeasures:
    """A constant infusion started in a drug-naive patient."""
    c = cat or catalog()
    system = build_system(patients)
    rate = dose_per_day / 24.0
    ss = readouts(system, steady_state(system, np.array([rate, 0.0])))["mas_drop"]
    times = np.arange(0.0, horizon_h + dt_h / 2, dt_h)
    drop = series(system, times, _constant(times, rate), ("mas_drop",))["mas_drop"]
    onset = first_crossing(times, drop, np.full(len(patients), c.definitions.onset_mas_drop))
    t90 = first_crossing(times, drop, 0.9 * ss)
    t90 = np.where(ss > 0, t90, np.nan)
    return InfusionMeasures(ss, onset, t90)
