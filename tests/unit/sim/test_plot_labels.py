"""Scenario plots: every label readable. Event labels never overlap one another, an event's line
or a panel (measured on the figure with the Agg renderer, over a hypothesis range of event
timings); threshold lines are named; tick labels are plain numbers (no "x10^2" offset)."""

from __future__ import annotations

import dataclasses
import tomllib
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.reports.label_layout import merge_close, place
from openitb.reports.scenario_plot import figure
from openitb.sim.runner import SimResult, run_scenario
from openitb.sim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[3]


@lru_cache(maxsize=4)
def scenario_result(name: str) -> SimResult:
    doc = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text(encoding="utf-8"))
    return run_scenario(parse_scenario(doc))


def boxes(fig: Any, texts: list[Any]) -> list[Any]:
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def check_readable(fig: Any, axes: list[Any], strip: Any, texts: list[Any]) -> None:
    fig.canvas.draw()
    bb = boxes(fig, texts)
    for (i, a), (j, b) in combinations(enumerate(bb), 2):
        assert not overlap(a, b), (texts[i].get_text(), texts[j].get_text())
    # The leaders: each event's line in the strip, from its floor up to its own label.
    for line in strip.lines:
        (x0, y0), (x1, y1) = strip.transData.transform(np.column_stack(line.get_data()))
        for t, b in zip(texts, bb, strict=True):
            crosses = b.x0 < x0 < b.x1 and b.y0 < max(y0, y1) and min(y0, y1) < b.y1
            assert not crosses, t.get_text()
    page = fig.bbox
    renderer = fig.canvas.get_renderer()
    for ax in axes:  # tick labels apart too (a symlog axis once printed "100" over "0")
        ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels()
                 if t.get_visible() and t.get_text()]
        for a, b in combinations(ticks, 2):
            assert not overlap(a, b), [t.get_text() for t in ax.get_yticklabels()]
    for t, b in zip(texts, bb, strict=True):
        assert page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1, \
            t.get_text()
        for ax in axes:  # so never over a data line, a threshold line or a legend
            assert not overlap(b, ax.get_window_extent(renderer)), t.get_text()
            legend = ax.get_legend()
            if legend is not None:
                assert not overlap(b, legend.get_window_extent(renderer)), t.get_text()


WORDS = ["refill", "program (165 mcg/day)", "bridge", "mri start", "mri end", "interrogate",
         "priming (0.5 mL)", "missed refill", "pocket fill (20 mL)", "x",
         "leak (40 %, 40 cm from the pump)", "disconnection"]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.sampled_from(WORDS)), max_size=18),
       st.lists(st.tuples(st.floats(0.0, 1.0), st.sampled_from(["low_reservoir", "motor_stall",
                                                                 "empty_reservoir"]),
                          st.booleans()), max_size=3))
def test_event_labels_never_overlap_each_other_the_lines_or_the_panels(
        events: list[tuple[float, str]], alarms: list[tuple[float, str, bool]]) -> None:
    import matplotlib.pyplot as plt

    base = scenario_result("mri")
    lo, hi = base.scenario.plot_window or (0.0, base.scenario.days)
    r = dataclasses.replace(
        base,
        events=[{"day": lo + f * (hi - lo), "kind": w.split(" ")[0], "label": w, "ok": True}
                for f, w in events],
        alarms=[{"day": lo + f * (hi - lo), "kind": k, "critical": c} for f, k, c in alarms])
    fig, axes, strip, texts = figure(r)
    try:
        assert len(texts) == len(merge_close(
            [float(strip.transData.transform((e["day"], 0))[0]) for e in [*r.events, *r.alarms]],
            ["?"] * (len(events) + len(alarms)), 3.0))
        check_readable(fig, axes, strip, texts)
    finally:
        plt.close(fig)


def test_the_shipped_bridge_mri_and_pocket_fill_plots_are_readable() -> None:
    import matplotlib.pyplot as plt

    expected = {"mri": "mri start", "concentration_change_bridge": "bridge",
                "pocket_fill": "pocket fill"}
    for name, event in expected.items():
        fig, axes, strip, texts = figure(scenario_result(name))
        try:
            shown = " ".join(t.get_text() for t in texts)
            assert event in shown
            assert "_" not in shown  # no code names: "mri start", "Motor stopped (alarm)"
            # A label naming an alarm is in the alarm's colour, even when shared with an event.
            assert all(t.get_color() in ("red", "darkorange") for t in texts
                       if "(alarm)" in t.get_text())
            check_readable(fig, axes, strip, texts)
            legends = " ".join(t.get_text() for ax in axes if ax.get_legend()
                               for t in ax.get_legend().get_texts())
            for name_ in ("early withdrawal", "severe withdrawal", "respiratory depression",
                          "low-reservoir alarm (2 mL)", "empty (0 mL)"):
                assert name_ in legends.replace("\n", " ")
        finally:
            plt.close(fig)


def test_tick_labels_are_plain_numbers_without_an_offset() -> None:
    import matplotlib.pyplot as plt

    base = scenario_result("mri")
    series = dict(base.series)
    # Nearly constant values far from zero: matplotlib's default shows "1e-5 + 4.236e2".
    wobble = 1e-4 * np.sin(np.arange(base.times_h.size))
    series["csf_lumbar_ng_per_ml"] = 423.6 + wobble
    series["csf_cisternal_ng_per_ml"] = 423.6 - wobble
    series["reservoir_ml"] = series["reservoir_estimate_ml"] = 38.1234 + wobble
    fig, axes, _strip, _texts = figure(dataclasses.replace(base, series=series))
    try:
        fig.canvas.draw()
        for ax in axes:
            assert ax.yaxis.get_offset_text().get_text() == ""
            labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
            assert labels and all("e" not in s and "×" not in s for s in labels), labels
        assert axes[-1].xaxis.get_offset_text().get_text() == ""
    finally:
        plt.close(fig)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1000), st.integers(1, 300)), max_size=30),
       st.floats(1.0, 8.0))
def test_the_placement_rule_keeps_texts_and_leaders_apart(
        labels: list[tuple[float, int]], pad: float) -> None:
    xs = [x for x, _ in labels]
    texts = [f"t{i}" for i in range(len(labels))]
    widths = dict(zip(texts, (w for _, w in labels), strict=True))

    def width(text: str) -> float:  # a merged label is as wide as its parts and joiners
        return sum(widths[t] + 10 for t in text.split(" / "))

    placed = place(xs, texts, width, pad)
    assert sorted(i for p in placed for i in p.members) == list(range(len(labels)))
    for a, b in combinations(placed, 2):
        if a.lane == b.lane:  # texts in one lane never touch
            assert a.right + pad <= b.x or b.right + pad <= a.x
        for p, q in ((a, b), (b, a)):  # p's leader rises to p's lane: never through q's text
            if q.lane < p.lane:
                assert not (q.x - pad + 1e-9 < p.x < q.right + pad)


def test_the_pump_plot_names_its_alarms_and_thresholds_readably() -> None:
    import matplotlib.pyplot as plt

    from openitb.commands.pump import START, simulate
    from openitb.reports.pump_plot import figure as pump_figure
    from openitb.therapy.prescription import Continuous
    from openitb.units import McgPerDay, McgPerMl, Milliliters

    pump = simulate("itb-40", McgPerMl(2000), Milliliters(40), Continuous(McgPerDay(800)), 110,
                    None, 0, [], record=True)
    fig, axes, strip, texts = pump_figure(pump, START)
    try:
        shown = [t.get_text() for t in texts]
        assert shown == ["Low reservoir (alarm)", "Empty reservoir (alarm)"]
        check_readable(fig, axes, strip, texts)
        legend = " ".join(t.get_text() for t in axes[0].get_legend().get_texts())
        assert "low-reservoir alarm (2 mL)" in legend and "empty (0 mL)" in legend
        for ax in axes:
            assert ax.yaxis.get_offset_text().get_text() == ""
    finally:
        plt.close(fig)
