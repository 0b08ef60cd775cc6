"""Inline SVG charts for the patient page: reservoir volume with its projection (low-reservoir
alarm, refill-by, empty), and the daily dose over time. No JavaScript, readable by a screen
reader through their titles and the tables beside them.

Each chart is drawn twice, for a wide and a narrow drawing area (style.css shows one), so that
its text keeps about 11 px on a desk and on a phone instead of shrinking with the picture.

Labels are placed by a rule that keeps them apart by construction:
- the dated event labels (refill by, low alarm, empty) each get a row of their own in a band
  above the plot, in date order, clamped between the y axis and the right edge; nothing else is
  drawn in that band, so they meet neither each other nor a line;
- the y-axis unit has the band's last row to itself, left of the axis;
- y tick labels sit left of the axis (the margin is widened to the widest), dates below it.
tests/unit/web/test_charts.py checks it from the SVG for generated inputs; the browser test
checks it with the real glyph boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

FONT = 11.0  # px: the chart's text size (style.css `.chart text`)
ASCENT, DESCENT = 1.0 * FONT, 0.3 * FONT  # generous: DejaVu Sans is about 0.93 and 0.24 em
ROW = ASCENT + DESCENT + 3  # one label row of the band: a label's box and a gap
GAP = 6.0  # between a label and the axis or the edge


@dataclass(frozen=True)
class Size:
    name: str
    w: int
    h: int
    pad_l: int  # the least left margin (widened for wide tick labels)
    pad_r: int
    pad_b: int


WIDE = Size("wide", 640, 220, 56, 16, 36)
NARROW = Size("narrow", 360, 220, 44, 12, 36)


def text_width(text: str) -> float:
    """An upper bound of the drawn width of ``text`` at FONT in a sans-serif face."""
    em = 0.0
    for ch in text:
        if ch in "mwMW":
            em += 1.0
        elif ch.isupper():
            em += 0.82
        elif ch in " .,:;'!|il":
            em += 0.4
        else:
            em += 0.68
    return em * FONT


@dataclass(frozen=True)
class Frame:
    """Where things go in one drawing: the plot area and the band above it."""
    size: Size
    pad_l: float
    pad_t: float
    rows: int  # event rows in the band

    @property
    def plot_right(self) -> float:
        return self.size.w - self.size.pad_r

    @property
    def plot_bottom(self) -> float:
        return self.size.h - self.size.pad_b

    def row_baseline(self, i: int) -> float:
        """Baseline of band row ``i`` (rows 0..rows-1 are events, row ``rows`` the unit)."""
        return 2 + ASCENT + i * ROW

    def label_x(self, x: float, width: float) -> float:
        """Left edge of an event label centred on ``x``, kept between the axis and the edge."""
        lo, hi = self.pad_l, self.size.w - GAP - width
        return max(lo, min(x - width / 2, hi))


def _frame(size: Size, ticks: list[str], events: int) -> Frame:
    pad_l = max(size.pad_l, math.ceil(max(text_width(t) for t in ticks) + 2 * GAP))
    unit_baseline = 2 + ASCENT + events * ROW
    # the top tick label (baseline pad_t + 4) starts below the unit's box
    pad_t = unit_baseline + DESCENT + ASCENT - 4 + 3
    return Frame(size, pad_l, pad_t, events)


def _scale(f: Frame, points: list[tuple[datetime, float]], y_max: float) -> tuple[Any, Any]:
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return f.pad_l + (t - t0).total_seconds() / span * (f.plot_right - f.pad_l)

    def y(v: float) -> float:
        return f.pad_t + (1 - v / y_max) * (f.plot_bottom - f.pad_t)

    return x, y


def _ticks(y_max: float) -> list[tuple[float, str]]:
    return [(frac, f"{y_max * frac:.4g}") for frac in (0, 0.5, 1)]


def _open(f: Frame, key: str, title: str, desc: str, unit: str, y_max: float,
          t0: datetime, t1: datetime) -> list[str]:
    ident = f"{key}-{f.size.name}"
    s = f.size
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {s.w} {s.h}" role="img" '
           f'aria-labelledby="t-{ident} d-{ident}" class="chart {s.name}">',
           f'<title id="t-{ident}">{escape(title)}</title>',
           f'<desc id="d-{ident}">{escape(desc)}</desc>',
           f'<line x1="{f.pad_l:.1f}" y1="{f.plot_bottom}" x2="{f.plot_right}" '
           f'y2="{f.plot_bottom}" class="axis"/>',
           f'<line x1="{f.pad_l:.1f}" y1="{f.pad_t:.1f}" x2="{f.pad_l:.1f}" '
           f'y2="{f.plot_bottom}" class="axis"/>']
    for frac, text in _ticks(y_max):
        yy = f.pad_t + (1 - frac) * (f.plot_bottom - f.pad_t)
        out.append(f'<text x="{f.pad_l - GAP:.1f}" y="{yy + 4:.1f}" '
                   f'text-anchor="end">{text}</text>')
    out.append(f'<text x="{GAP / 2:.1f}" y="{f.row_baseline(f.rows):.1f}" class="unit">'
               f'{escape(unit)}</text>')
    first, last = f"{t0:%Y-%m-%d}", f"{t1:%Y-%m-%d}"
    out.append(f'<text x="{f.pad_l:.1f}" y="{s.h - 12}">{first}</text>')
    if f.plot_right - text_width(last) > f.pad_l + text_width(first) + GAP:
        out.append(f'<text x="{f.plot_right}" y="{s.h - 12}" text-anchor="end">{last}</text>')
    return out


def _reservoir(record: dict[str, Any], size: Size) -> str:
    pump = record["pump"]
    profile = record["profile"]
    now: datetime = record["now"]
    refilled = sum(r.volume_ml for r in record["refills"])
    initial = max(0.0, float(pump.state.get("filled_nl", 0)) / 1e6 - refilled)
    pts: list[tuple[datetime, float]] = [(pump.implanted_at, initial)]
    for r in record["refills"]:
        pts.append((r.at, r.withdrawn_ml))
        pts.append((r.at, r.volume_ml))
    pts.append((now, pump.reservoir_ml))
    proj: list[tuple[datetime, float, str]] = []
    if pump.low_alarm_at and pump.low_alarm_at > now:
        proj.append((pump.low_alarm_at, float(pump.state.get("low_threshold_nl", 2e6)) / 1e6,
                     "low alarm"))
    if pump.empty_at and pump.empty_at > now:
        proj.append((pump.empty_at, 0.0, "empty"))
    all_pts = pts + [(t, v) for t, v, _ in proj]
    y_max = profile.capacity.value
    t0, t1 = min(t for t, _ in all_pts), max(t for t, _ in all_pts)
    refill_by = pump.refill_by if pump.refill_by and t0 <= pump.refill_by <= t1 else None
    # every dated label, in date order: one band row each
    events = sorted([(t, f"{label} {t:%m-%d}", "event") for t, _, label in proj]
                    + ([(refill_by, f"refill by {refill_by:%m-%d}", "event refill")]
                       if refill_by else []))
    f = _frame(size, [t for _, t in _ticks(y_max)], len(events))
    x, y = _scale(f, all_pts, y_max)
    desc = (f"Reservoir {pump.reservoir_ml:.1f} mL now; "
            + (f"low-reservoir alarm {pump.low_alarm_at:%Y-%m-%d}; " if pump.low_alarm_at else "")
            + (f"refill by {pump.refill_by:%Y-%m-%d}; " if pump.refill_by else "")
            + (f"empty {pump.empty_at:%Y-%m-%d}" if pump.empty_at else ""))
    out = _open(f, "reservoir", "Reservoir volume and projection", desc, "mL", y_max, t0, t1)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(pts))
    out.append(f'<path d="{path}" class="series"/>')
    if proj:
        ppath = f"M{x(now):.1f},{y(pump.reservoir_ml):.1f} " + " ".join(
            f"L{x(t):.1f},{y(v):.1f}" for t, v, _ in proj)
        out.append(f'<path d="{ppath}" class="projection"/>')
        for t, v, _ in proj:
            out.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="4" class="marker"/>')
    if refill_by:
        xr = x(refill_by)
        out.append(f'<line x1="{xr:.1f}" y1="{f.pad_t:.1f}" x2="{xr:.1f}" y2="{f.plot_bottom}" '
                   f'class="refill-by"/>')
    for i, (t, text, cls) in enumerate(events):
        left = f.label_x(x(t), text_width(text))
        out.append(f'<text x="{left:.1f}" y="{f.row_baseline(i):.1f}" class="{cls}">'
                   f'{escape(text)}</text>')
    xn = x(now)
    out.append(f'<line x1="{xn:.1f}" y1="{f.pad_t:.1f}" x2="{xn:.1f}" y2="{f.plot_bottom}" '
               f'class="now"/>')
    out.append("</svg>")
    return "\n".join(out)


def _dose(record: dict[str, Any], size: Size) -> str:
    programs = record["programs"]
    now: datetime = record["now"]
    pts: list[tuple[datetime, float]] = []
    for p in programs:
        if pts:
            pts.append((p.at, pts[-1][1]))
        pts.append((p.at, p.dose_per_day))
    pts.append((now, pts[-1][1]))
    y_max = max(v for _, v in pts) * 1.2 or 1.0
    f = _frame(size, [t for _, t in _ticks(y_max)], 0)
    x, y = _scale(f, pts, y_max)
    t0, t1 = pts[0][0], now
    out = _open(f, "dose", "Daily dose", f"Daily dose now {pts[-1][1]:.4g} mcg/day over "
                f"{len(programs)} programs", "mcg/day", y_max, t0, t1)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(pts))
    out.append(f'<path d="{path}" class="series"/>')
    for p in programs:
        cls = "marker" if p.classification == "within" else "marker warn"
        out.append(f'<circle cx="{x(p.at):.1f}" cy="{y(p.dose_per_day):.1f}" r="4" class="{cls}">'
                   f'<title>{p.at:%Y-%m-%d}: {p.dose_per_day:.4g} mcg/day '
                   f'({escape(p.classification)})</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


def reservoir_svg(record: dict[str, Any]) -> str:
    if record["pump"] is None:
        return ""
    return "\n".join(_reservoir(record, size) for size in (WIDE, NARROW))


def dose_svg(record: dict[str, Any]) -> str:
    if not record["programs"]:
        return ""
    return "\n".join(_dose(record, size) for size in (WIDE, NARROW))
