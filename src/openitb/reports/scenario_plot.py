"""The scenario plot (`itb simulate --plot`): dose, baclofen in the spinal fluid, spasticity,
withdrawal and overdose, the reservoir; events and alarms named in a strip above the panels.

Every label is readable: plain numbers on the ticks (units in the axis labels), each threshold
line named in its panel's legend, legends beside the panels (never over a line), event labels
placed by the rule in ``label_layout`` (never over one another or another event's line).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openitb.clinic.labels import ALARM
from openitb.physiology.params import catalog
from openitb.reports.plotting import (
    Event,
    lay_out,
    legend_beside,
    plain_numbers,
    style_strip,
    threshold,
)

if TYPE_CHECKING:
    from openitb.sim.runner import SimResult

LONG_DAYS = 40.0  # longer windows show daily means and daily min-max bands
MAX_EVENT_CHARS = 34  # a longer event label is shown by its kind alone


def events_of(result: SimResult) -> list[Event]:
    """The scenario's events and the pump's alarms, as the strip names them."""
    out = []
    for e in result.events:
        text = e["label"] if len(e["label"]) <= MAX_EVENT_CHARS else e["kind"]
        if not e.get("ok", True):
            text += " (refused)"
        out.append(Event(float(e["day"]), text.replace("_", " "), "black"))
    for al in result.alarms:
        name = ALARM.get(al["kind"], al["kind"].replace("_", " "))
        out.append(Event(float(al["day"]), f"{name} (alarm)",
                         "red" if al["critical"] else "darkorange"))
    return out


def figure(result: SimResult) -> tuple[Any, list[Any], Any, list[Any]]:
    """The plot as a matplotlib figure (Agg): (figure, panels, event strip, event texts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    d = catalog().definitions
    s = result.series
    days = result.days
    has_pump = "reservoir_ml" in s
    rows = 5 if has_pump else 4
    fig = plt.figure(figsize=(13, 2.1 * rows + 1.6))
    gs = fig.add_gridspec(rows + 1, 1, height_ratios=[0.2] + [1.0] * rows)
    axes: list[Any] = []
    for i in range(rows):
        axes.append(fig.add_subplot(gs[i + 1], sharex=axes[0] if axes else None))
    strip = fig.add_subplot(gs[0], sharex=axes[0])
    lo, hi = result.scenario.plot_window or (float(days[0]), float(days[-1]))
    daily = hi - lo > LONG_DAYS

    bands = result.cohort["bands"] if result.cohort is not None else {}

    def per_day(y: Any) -> tuple[Any, Any, Any, Any]:
        day_index = np.floor(days).astype(int)
        first = int(day_index[0])
        n = int(day_index[-1]) - first + 1
        idx = day_index - first
        lo_v = np.full(n, np.inf)
        hi_v = np.full(n, -np.inf)
        np.minimum.at(lo_v, idx, y)
        np.maximum.at(hi_v, idx, y)
        mean = np.bincount(idx, y, n) / np.maximum(np.bincount(idx, None, n), 1)
        ok = np.isfinite(lo_v)
        centre = first + np.arange(n) + 0.5
        return centre[ok], lo_v[ok], hi_v[ok], mean[ok]

    def line(ax: Any, key: str, color: str, label: str | None = None) -> None:
        band = bands.get(key)
        if not daily:
            if band is not None:
                ax.fill_between(days, band[0], band[1], color=color, alpha=0.2, lw=0)
            text = label if label is None or band is None else f"{label} (median, 5-95 %)"
            ax.plot(days, s[key], color=color, label=text)
            return
        centre, lo_v, hi_v, mean = per_day(s[key])
        if band is not None:
            lo_v = per_day(band[0])[1]
            hi_v = per_day(band[1])[2]
        ax.fill_between(centre, lo_v, hi_v, color=color, alpha=0.25, lw=0)
        what = "median; daily mean, 5-95 % range" if band is not None else "daily mean, range"
        ax.plot(centre, mean, color=color, label=None if label is None else f"{label} ({what})")

    ax = axes[0]
    edges, tip = binned_rate(result, "dose_at_tip_mcg_per_h", lo, hi, daily)
    mean_of = " (daily mean)" if daily else ""
    ax.stairs(tip * 24, edges, color="tab:blue", label=f"at the catheter tip{mean_of}",
              baseline=None)
    if s["tissue_mcg_per_h"].any():
        edges, tissue = binned_rate(result, "tissue_mcg_per_h", lo, hi, daily)
        ax.stairs(tissue * 24, edges, color="tab:brown", label=f"to tissue / pocket{mean_of}",
                  baseline=None)
        # A log scale only where the pocket's dose dwarfs the tip's (a pocket fill).
        if float(tissue.max()) > 10 * max(float(tip.max()), 1e-9):
            decade = 10.0 ** math.ceil(math.log10(max(float(tip.max()) * 24, 1.0)))
            ax.set_yscale("symlog", linthresh=decade, linscale=0.5)
            # Ticks at 0 and at each decade from the linear range's top: none crowd the 0.
            from matplotlib.ticker import FixedLocator, NullLocator

            top_decade = math.ceil(math.log10(max(float(tissue.max()) * 24, decade)))
            ax.yaxis.set_major_locator(FixedLocator(
                [0.0] + [10.0 ** k for k in range(round(math.log10(decade)), top_decade + 1)]))
            ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel("dose rate\nmcg/day")
    ax = axes[1]
    line(ax, "csf_lumbar_ng_per_ml", "tab:purple", "lumbar CSF")
    line(ax, "csf_cisternal_ng_per_ml", "tab:pink", "cisternal CSF")
    if s["plasma_ng_per_ml"].max() > 1:
        line(ax, "plasma_ng_per_ml", "tab:brown", "plasma")
    ax.set_ylabel("baclofen\nng/mL")
    ax = axes[2]
    line(ax, "mas", "tab:green", "spasticity (MAS)")
    if result.scenario.start == "naive":
        threshold(ax, float(s["mas"][0]), f"untreated baseline ({float(s['mas'][0]):.1f})",
                  "grey", ls=":")
    ax.set_ylim(-0.1, 4.1)
    ax.set_ylabel("spasticity\nMAS (0-4)")
    ax = axes[3]
    line(ax, "withdrawal", "tab:orange", "withdrawal")
    line(ax, "overdose", "tab:red", "overdose")
    threshold(ax, d.withdrawal_early, f"early withdrawal signs ({d.withdrawal_early:g})",
              "tab:orange", ls=":", lw=0.7)
    threshold(ax, d.withdrawal_severe, f"severe withdrawal ({d.withdrawal_severe:g})",
              "tab:orange", lw=0.7)
    threshold(ax, d.overdose_respiratory,
              f"respiratory depression ({d.overdose_respiratory:g})", "tab:red", lw=0.7)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("severity\n(0-1)")
    if has_pump:
        ax = axes[4]
        ax.plot(days, s["reservoir_ml"], color="tab:blue", label="reservoir (true)")
        ax.plot(days, s["reservoir_estimate_ml"], "--", color="tab:cyan", label="pump estimate")
        pump = result.scenario.pump
        if pump is not None:
            low = (pump.low_alarm or pump.profile.low_alarm_default).value
            threshold(ax, low, f"low-reservoir alarm ({low:g} mL)", "darkorange", lw=0.8)
        threshold(ax, 0.0, "empty (0 mL)", "red", ls=":", lw=0.8)
        seen = (days >= lo) & (days <= hi)
        top_ml = max(float(s["reservoir_ml"][seen].max()),
                     float(s["reservoir_estimate_ml"][seen].max()))
        ax.set_ylim(-0.03 * top_ml - 0.05, top_ml * 1.08 + 0.05)
        ax.set_ylabel("reservoir\nmL")
    axes[-1].set_xlabel("day")
    axes[-1].set_xlim(lo, hi)
    for e in result.events:
        if lo <= e["day"] <= hi:
            for a in axes:
                a.axvline(e["day"], color="black", lw=0.6, alpha=0.6)
    for al in result.alarms:
        if lo <= al["day"] <= hi:
            for a in axes:
                a.axvline(al["day"], color="red" if al["critical"] else "darkorange", lw=0.8,
                          ls="--")
    for a in axes:
        a.grid(alpha=0.3)
        plain_numbers(a.yaxis)
        legend_beside(a)
        if a is not axes[-1]:
            a.tick_params(labelbottom=False)
    plain_numbers(axes[-1].xaxis)
    style_strip(strip)
    who = result.scenario.patient_name
    if result.cohort is not None:
        who = f"{result.cohort['patients']} patients around {who}"
    fig.suptitle(f"{result.scenario.name} ({who})", fontsize=11)
    if result.screening is not None and "reason" in result.screening:
        axes[2].text(0.99, 0.04, result.screening["reason"], transform=axes[2].transAxes,
                     ha="right", va="bottom", fontsize=8, wrap=True,
                     bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "grey"})
    texts = lay_out(fig, strip, events_of(result))
    return fig, axes, strip, texts


def plot(result: SimResult, path: Path) -> None:
    """Write the plot as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig, *_ = figure(result)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def binned_rate(result: SimResult, key: str, lo: float, hi: float,
                daily: bool = False) -> tuple[Any, Any]:
    """Mean rate per display bin (mcg/h): the pump delivers whole strokes, so the per-interval
    rate flickers between neighbouring stroke counts; a plot shows the mean over a bin (a whole
    day for long runs)."""
    import numpy as np

    t = result.times_h
    rate = result.series[key][:-1]
    cum = np.concatenate([[0.0], np.cumsum(rate * np.diff(t))])
    inside = int(np.sum((t >= lo * 24) & (t <= hi * 24)))
    nbins = max(1, min(300, inside - 1))
    edges_h = np.linspace(lo * 24, hi * 24, nbins + 1)
    if daily:
        edges_h = np.arange(np.floor(lo), np.ceil(hi) + 0.5) * 24.0
    mass = np.interp(edges_h, t, cum)
    return edges_h / 24.0, np.diff(mass) / np.diff(edges_h)
