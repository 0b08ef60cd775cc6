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
from openitb.physiology.params import catalog
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


LONG_DAYS = 40.0


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


def plot(result: SimResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = catalog().definitions
    s = result.series
    days = result.days
    has_pump = "reservoir_ml" in s
    rows = 5 if has_pump else 4
    fig, axes = plt.subplots(rows, 1, sharex=True, figsize=(11, 2.1 * rows + 1.2))
    lo, hi = result.scenario.plot_window or (float(days[0]), float(days[-1]))
    daily = hi - lo > LONG_DAYS  # long runs: daily means and daily min-max bands

    bands = result.cohort["bands"] if result.cohort is not None else {}

    def per_day(y: Any) -> tuple[Any, Any, Any, Any]:
        import numpy as np

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
    edges, tip = _binned_rate(result, "dose_at_tip_mcg_per_h", lo, hi, daily)
    mean_of = " (daily mean)" if daily else ""
    ax.stairs(tip * 24, edges, color="tab:blue", label=f"at the catheter tip{mean_of}",
              baseline=None)
    if s["tissue_mcg_per_h"].any():
        edges, tissue = _binned_rate(result, "tissue_mcg_per_h", lo, hi, daily)
        ax.stairs(tissue * 24, edges, color="tab:brown", label=f"to tissue / pocket{mean_of}",
                  baseline=None)
        # A log scale only where the pocket's dose dwarfs the tip's (a pocket fill); plain
        # numbers on the ticks either way.
        if float(tissue.max()) > 10 * max(float(tip.max()), 1e-9):
            decade = 10.0 ** math.ceil(math.log10(max(float(tip.max()) * 24, 1.0)))
            ax.set_yscale("symlog", linthresh=decade, linscale=0.5)
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("dose rate\nmcg/day")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    line(ax, "csf_lumbar_ng_per_ml", "tab:purple", "lumbar CSF")
    line(ax, "csf_cisternal_ng_per_ml", "tab:pink", "cisternal CSF")
    if s["plasma_ng_per_ml"].max() > 1:
        line(ax, "plasma_ng_per_ml", "tab:brown", "plasma")
    ax.set_ylabel("baclofen\nng/mL")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    line(ax, "mas", "tab:green")
    base = float(s["mas"][0]) if result.scenario.start == "naive" else None
    if base is not None:
        ax.axhline(base, color="grey", ls=":", lw=0.8, label="baseline")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(-0.1, 4.1)
    ax.set_ylabel("spasticity\nMAS (0-4)")
    ax = axes[3]
    line(ax, "withdrawal", "tab:orange", "withdrawal")
    line(ax, "overdose", "tab:red", "overdose")
    ax.axhline(d.withdrawal_early, color="tab:orange", ls=":", lw=0.7)
    ax.axhline(d.withdrawal_severe, color="tab:orange", ls="--", lw=0.7)
    ax.axhline(d.overdose_respiratory, color="tab:red", ls="--", lw=0.7)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("severity\n(0-1)")
    ax.legend(loc="upper right", fontsize=8)
    if has_pump:
        ax = axes[4]
        ax.plot(days, s["reservoir_ml"], color="tab:blue", label="reservoir (true)")
        ax.plot(days, s["reservoir_estimate_ml"], "--", color="tab:cyan", label="pump estimate")
        seen = (days >= lo) & (days <= hi)
        top_ml = max(float(s["reservoir_ml"][seen].max()), float(s["reservoir_estimate_ml"][seen].max()))
        ax.set_ylim(-0.03 * top_ml - 0.05, top_ml * 1.08 + 0.05)
        ax.set_ylabel("reservoir\nmL")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("day")
    axes[-1].set_xlim(lo, hi)
    top = axes[0]
    for e in result.events:
        if not lo <= e["day"] <= hi:
            continue
        for a in axes:
            a.axvline(e["day"], color="black", lw=0.6, alpha=0.6)
        text = e["label"] if len(e["label"]) <= 34 else e["kind"]
        top.annotate(text, (e["day"], 0.97), xycoords=("data", "axes fraction"), rotation=90,
                     va="top", ha="right", fontsize=7,
                     bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    for al in result.alarms:
        if not lo <= al["day"] <= hi:
            continue
        for a in axes:
            a.axvline(al["day"], color="red" if al["critical"] else "darkorange", lw=0.8, ls="--")
        axes[-1].annotate(al["kind"], (al["day"], 1.0), xycoords=("data", "axes fraction"),
                          rotation=90, va="top", ha="left", fontsize=7,
                          color="red" if al["critical"] else "darkorange")
    for a in axes:
        a.grid(alpha=0.3)
    who = result.scenario.patient_name
    if result.cohort is not None:
        who = f"{result.cohort['patients']} patients around {who}"
    fig.suptitle(f"{result.scenario.name} ({who})", fontsize=11)
    if result.screening is not None and "reason" in result.screening:
        axes[2].text(0.99, 0.04, result.screening["reason"], transform=axes[2].transAxes,
                     ha="right", va="bottom", fontsize=8, wrap=True,
                     bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "grey"})
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)



def _binned_rate(result: SimResult, key: str, lo: float, hi: float,
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
