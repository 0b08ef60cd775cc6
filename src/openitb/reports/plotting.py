"""What every OpenITB plot shares: plain tick numbers, legends beside the panel, threshold lines
that carry their name, and the strip of event labels (placed by ``label_layout``).

matplotlib is imported by the callers (Agg); this module takes their axes and figures.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openitb.reports.label_layout import lanes, place

EVENT_FONT = 7.0  # points
LANE_PAD_PX = 3.0  # between lanes, and around each label's box
LEGEND_WRAP = 26  # characters per legend line (the legends sit beside the panels)


def plain_numbers(axis: Any) -> None:
    """Tick labels as plain numbers (no "x10^2" offset, no scientific notation): the unit is
    in the axis label, the number on the tick is the value."""
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    if axis.get_scale() != "linear":
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.{_decimals(v)}f}"))
        return
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)


def _decimals(v: float) -> int:
    return 0 if v == 0 or abs(v) >= 1 else min(6, len(f"{abs(v):.6f}".rstrip("0").split(".")[1]))


def threshold(ax: Any, y: float, label: str, color: str, ls: str = "--", lw: float = 0.8) -> None:
    """A horizontal threshold line, named in the panel's legend."""
    ax.axhline(y, color=color, ls=ls, lw=lw, label=label)


def legend_beside(ax: Any) -> None:
    """The panel's legend to its right, outside the data: it never covers a line."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    wrapped = [textwrap.fill(text, LEGEND_WRAP) for text in labels]
    ax.legend(handles, wrapped, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, borderaxespad=0.0, handlelength=1.8)


_URGENCY = {"red": 0, "darkorange": 1, "black": 2}


@dataclass(frozen=True)
class Event:
    """A thing that happened at day ``day``, to name above the plot."""

    day: float
    text: str
    color: str = "black"


def style_strip(strip: Any) -> None:
    strip.set_yticks([])
    strip.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    for side in ("left", "right", "top"):
        strip.spines[side].set_visible(False)


def lay_out(fig: Any, strip: Any, events: Sequence[Event]) -> list[Any]:
    """``fig.tight_layout()`` with the events' labels in ``strip`` (an axes above the panels,
    sharing their x axis, first row of their gridspec): as many lanes as the placement rule
    needs, a leader from the strip's floor to each label, the strip's height fitted to its
    lanes. Layout and placement are repeated until the strip holds its lanes (the labels take
    part in the layout). Returns the label texts."""
    gs = strip.get_subplotspec().get_gridspec()
    texts: list[Any] = []
    for _ in range(8):
        fig.tight_layout()
        texts, n = _draw_labels(fig, strip, events)
        want = max(n, 1) * _lane_px(fig) + LANE_PAD_PX
        have = float(strip.get_window_extent(fig.canvas.get_renderer()).height)
        if want - 0.5 <= have <= want + _lane_px(fig):
            break
        ratios = list(gs.get_height_ratios() or [1.0] * gs.nrows)
        ratios[0] *= want / max(have, 1.0)
        gs.set_height_ratios(ratios)
    return texts


def _lane_px(fig: Any) -> float:
    t = fig.text(0, 0, "Ag(|", fontsize=EVENT_FONT)
    h = float(t.get_window_extent(fig.canvas.get_renderer()).height)
    t.remove()
    return h + 2 * LANE_PAD_PX


def _draw_labels(fig: Any, strip: Any, events: Sequence[Event]) -> tuple[list[Any], int]:
    """Place and draw the labels in the strip as laid out now: (texts, lanes used)."""
    for artist in [*strip.texts, *strip.lines]:
        artist.remove()
    renderer = fig.canvas.get_renderer()
    probe = strip.text(0, 0, "", fontsize=EVENT_FONT)

    def width(text: str) -> float:
        probe.set_text(text)
        return float(probe.get_window_extent(renderer).width) + LANE_PAD_PX

    lo, hi = strip.get_xlim()
    inside = [e for e in events if lo <= e.day <= hi]
    to_px = strip.transData.transform
    xs = [float(to_px((e.day, 0.0))[0]) for e in inside]
    placed = place(xs, [e.text for e in inside], width, pad=LANE_PAD_PX)
    probe.remove()
    lane_px = _lane_px(fig)
    # The strip's y axis in pixels from its floor, whatever height the layout gave it.
    strip.set_ylim(0, max(float(strip.get_window_extent(renderer).height), 1.0))
    to_data = strip.transData.inverted().transform
    texts = []
    for p in placed:
        # A shared label takes its most urgent colour (a critical alarm's red first).
        colour = min((inside[i].color for i in p.members), key=lambda c: _URGENCY.get(c, 3))
        y = p.lane * lane_px + LANE_PAD_PX
        day = float(to_data((p.x, 0.0))[0])
        strip.plot([day, day], [0, y], color=colour, lw=0.6, alpha=0.8, solid_capstyle="butt")
        texts.append(strip.annotate(p.text, (day, y), xytext=(LANE_PAD_PX * 0.5, 0),
                                    textcoords="offset pixels", va="bottom", ha="left",
                                    fontsize=EVENT_FONT, color=colour, annotation_clip=False))
    return texts, lanes(placed)
