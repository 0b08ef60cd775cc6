"""The fleet study's comparison plot: each outcome's rate per policy with its 95 % interval."""

from __future__ import annotations

import os
from pathlib import Path

from openitb.reports.plotting import plain_numbers
from openitb.sim.fleet_runner import PolicyResult

SHOWN = (
    ("low_alarm", "low-reservoir alarm"),
    ("empty_reservoir", "empty reservoir (the pump's own estimate)"),
    ("reservoir_dry", "reservoir ran dry (true volume; over-infusing pumps too)"),
    ("withdrawal_early", "withdrawal, early signs only"),
    ("withdrawal_severe", "withdrawal, severe"),
    ("overdose_drowsiness", "overdose, drowsiness"),
    ("overdose_respiratory", "overdose, respiratory depression"),
    ("unplanned_visit", "unplanned visits"),
)


def plot_policies(results: list[PolicyResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = -(-len(SHOWN) // cols)
    height = 1.0 + rows * (0.6 + 0.28 * len(results))
    fig, grid = plt.subplots(rows, cols, figsize=(13, height), sharey=True, squeeze=False)
    names = [r.policy for r in results]
    ys = list(range(len(names)))
    axes = grid.ravel()
    for ax, (key, label) in zip(axes, SHOWN, strict=False):
        rates = [r.rates[key] for r in results]
        x = [v.per_1000_py for v in rates]
        err = [[v.per_1000_py - v.low for v in rates], [v.high - v.per_1000_py for v in rates]]
        best = min(x)
        colors = ["tab:green" if v == best else "tab:blue" for v in x]
        ax.errorbar(x, ys, xerr=err, fmt="none", capsize=3, ecolor="0.6")
        ax.scatter(x, ys, c=colors, zorder=3)
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_yticks(ys, names, fontsize=8)
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("per 1,000 patient-years", fontsize=8)
        plain_numbers(ax.xaxis)
    axes[0].invert_yaxis()
    for ax in axes[len(SHOWN):]:
        ax.axis("off")
    py = results[0].patient_years if results else 0
    fig.suptitle(f"{title}: {py:,.0f} patient-years per policy; bars: 95 % interval; "
                 "green: lowest", fontsize=11)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
