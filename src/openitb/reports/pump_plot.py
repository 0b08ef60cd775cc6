"""The pump plot (`itb pump simulate --plot`): reservoir (true and the pump's estimate) with the
low-reservoir threshold and empty named, the programmed flow, and the dose leaving the catheter
per day; the alarms named in a strip above (placed by ``label_layout``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openitb.clinic.labels import ALARM
from openitb.reports.plotting import (
    Event,
    lay_out,
    legend_beside,
    plain_numbers,
    style_strip,
    threshold,
)

if TYPE_CHECKING:
    from openitb.pump.controller import PumpController


def figure(pump: PumpController, start: datetime) -> tuple[Any, list[Any], Any, list[Any]]:
    """(figure, panels, event strip, event texts); ``start`` is day 0 of the alarms' axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    h = pump.history
    days = np.array([(s["t"] - pump.born) / 86400 for s in h])
    fig = plt.figure(figsize=(11.5, 8.4))
    gs = fig.add_gridspec(4, 1, height_ratios=[0.15, 1.0, 1.0, 1.0])
    ax1 = fig.add_subplot(gs[1])
    ax2 = fig.add_subplot(gs[2], sharex=ax1)
    ax3 = fig.add_subplot(gs[3], sharex=ax1)
    strip = fig.add_subplot(gs[0], sharex=ax1)
    ax1.plot(days, [s["reservoir_ml"] for s in h], label="reservoir (true)")
    ax1.plot(days, [s["estimate_ml"] for s in h], "--", color="tab:cyan",
             label="reservoir (pump estimate)")
    low = pump.low_threshold_nl / 1e6
    threshold(ax1, low, f"low-reservoir alarm ({low:g} mL)", "darkorange")
    threshold(ax1, 0.0, "empty (0 mL)", "red", ls=":")
    ax1.set_ylabel("reservoir\nmL")
    ax2.step(days, [s["rate_ml_per_day"] for s in h], where="post", label="programmed basal flow")
    ax2.set_ylabel("flow\nmL/day")
    # What reached the spinal fluid (and tissue), per whole day: cumulative totals differenced.
    if len(days) > 1:
        edges = np.arange(0.0, np.ceil(days[-1]) + 1.0)
        for key, label in (("delivered_mcg", "to the spinal fluid"), ("tissue_mcg", "to tissue")):
            cum = np.interp(edges, days, [s[key] for s in h])
            ax3.step(edges[:-1], np.diff(cum), where="post", label=label)
    ax3.set_ylabel("dose leaving the\ncatheter, mcg/day")
    ax3.set_xlabel("day")
    events = []
    for a in pump.alarms.history:
        d = (datetime.fromisoformat(a.raised_at) - start).total_seconds() / 86400
        colour = "red" if a.critical else "darkorange"
        for ax in (ax1, ax2, ax3):
            ax.axvline(d, color=colour, lw=0.8)
        events.append(Event(d, f"{ALARM.get(a.kind, a.kind.replace('_', ' '))} (alarm)", colour))
    axes = [ax1, ax2, ax3]
    for ax in axes:
        ax.grid(alpha=0.3)
        plain_numbers(ax.yaxis)
        legend_beside(ax)
    for ax in (ax1, ax2):
        ax.tick_params(labelbottom=False)
    plain_numbers(ax3.xaxis)
    style_strip(strip)
    fig.suptitle(f"{pump.profile.name}: reservoir, program and dose delivered "
                 "(alarm lines: orange non-critical, red critical)", fontsize=10)
    return fig, axes, strip, lay_out(fig, strip, events)


def plot(pump: PumpController, start: datetime, path: Path) -> None:
    """Write the plot as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig, *_ = figure(pump, start)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
