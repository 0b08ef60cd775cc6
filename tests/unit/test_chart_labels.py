"""The patient page's charts (web/charts.py): for any reservoir and dose history, no two labels
overlap, no label lies on a line, a marker or the plotted series, and every label is inside the
picture. Label boxes are computed from the SVG itself (position, anchor, text) with the charts'
width bound; tests/e2e/test_layout.py checks the same with the browser's real glyph boxes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.web import charts

NS = "{http://www.w3.org/2000/svg}"
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def text_box(el: ET.Element) -> Box:
    x, y = float(el.get("x", 0)), float(el.get("y", 0))
    w = charts.text_width(el.text or "")
    anchor = el.get("text-anchor", "start")
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return (x0, y - charts.ASCENT, x0 + w, y + charts.DESCENT)


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def segment_hits(box: Box, p: tuple[float, float], q: tuple[float, float]) -> bool:
    """Does the segment p-q touch the box? (Liang-Barsky clipping.)"""
    x0, y0, x1, y1 = box
    dx, dy = q[0] - p[0], q[1] - p[1]
    lo, hi = 0.0, 1.0
    for den, num in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if den == 0:
            if num < 0:
                return False
            continue
        t = num / den
        if den < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo > hi:
            return False
    return True


def shapes(svg: ET.Element) -> tuple[list[tuple[str, Box]], list[tuple[Any, Any]], list[Box]]:
    texts = [(t.text or "", text_box(t)) for t in svg.iter(f"{NS}text")]
    segments = []
    for line in svg.iter(f"{NS}line"):
        segments.append(((float(line.get("x1", 0)), float(line.get("y1", 0))),
                         (float(line.get("x2", 0)), float(line.get("y2", 0)))))
    for path in svg.iter(f"{NS}path"):
        pts = [(float(a), float(b)) for a, b in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)",
                                                             path.get("d", ""))]
        segments += list(zip(pts, pts[1:], strict=False))
    circles = [(float(c.get("cx", 0)) - 4, float(c.get("cy", 0)) - 4,
                float(c.get("cx", 0)) + 4, float(c.get("cy", 0)) + 4)
               for c in svg.iter(f"{NS}circle")]
    return texts, segments, circles


def assert_apart(markup: str) -> int:
    """Check each <svg> of the markup; the number of labels checked."""
    checked = 0
    for part in markup.split("</svg>")[:-1]:
        svg = ET.fromstring(part + "</svg>")
        _, _, w, h = (float(v) for v in svg.get("viewBox", "").split())
        texts, segments, circles = shapes(svg)
        for i, (a, box) in enumerate(texts):
            assert box[0] >= 0 and box[2] <= w and box[1] >= 0 and box[3] <= h, \
                f"{a!r} {box} leaves the {w}x{h} picture"
            for b, other in texts[i + 1:]:
                assert not overlap(box, other), f"{a!r} {box} overlaps {b!r} {other}"
            for p, q in segments:
                assert not segment_hits(box, p, q), f"{a!r} {box} lies on the line {p}-{q}"
            for c in circles:
                assert not overlap(box, c), f"{a!r} {box} covers the marker {c}"
            checked += 1
    return checked


T0 = datetime(2024, 1, 1)


def reservoir_record(capacity: float, days: int, refills: list[tuple[float, float, float]],
                     reservoir: float, low_in: float | None, empty_after: float | None,
                     refill_by_in: float | None) -> dict[str, Any]:
    now = T0 + timedelta(days=days)
    low = now + timedelta(days=low_in) if low_in is not None else None
    empty = (low or now) + timedelta(days=empty_after) if empty_after is not None else None
    rows = [SimpleNamespace(at=T0 + timedelta(days=days * f), withdrawn_ml=w * capacity,
                            volume_ml=v * capacity) for f, w, v in sorted(refills)]
    pump = SimpleNamespace(
        implanted_at=T0, reservoir_ml=reservoir * capacity, low_alarm_at=low, empty_at=empty,
        refill_by=now + timedelta(days=refill_by_in) if refill_by_in is not None else None,
        state={"filled_nl": capacity * 1e6, "low_threshold_nl": 2e6})
    return {"pump": pump, "profile": SimpleNamespace(capacity=SimpleNamespace(value=capacity)),
            "refills": rows, "now": now, "programs": []}


fraction = st.floats(0, 1)


@settings(max_examples=150, deadline=None)
@given(capacity=st.sampled_from([10.0, 20.0, 40.0]), days=st.integers(1, 3000),
       refills=st.lists(st.tuples(fraction, fraction, fraction), max_size=8),
       reservoir=fraction,
       low_in=st.none() | st.floats(0.01, 90), empty_after=st.none() | st.floats(0, 30),
       refill_by_in=st.none() | st.floats(-30, 90))
def test_reservoir_chart_labels_never_collide(capacity: float, days: int,
                                              refills: list[tuple[float, float, float]],
                                              reservoir: float, low_in: float | None,
                                              empty_after: float | None,
                                              refill_by_in: float | None) -> None:
    markup = charts.reservoir_svg(reservoir_record(capacity, days, refills, reservoir, low_in,
                                                   empty_after, refill_by_in))
    assert assert_apart(markup) >= 2 * 6  # both drawings: 3 ticks, unit, 2 dates at least


@settings(max_examples=100, deadline=None)
@given(days=st.integers(1, 3000),
       programs=st.lists(st.tuples(fraction, st.floats(0.5, 50_000),
                                   st.sampled_from(["within", "above_recommended"])),
                         min_size=1, max_size=10))
def test_dose_chart_labels_never_collide(days: int,
                                         programs: list[tuple[float, float, str]]) -> None:
    rows = [SimpleNamespace(at=T0 + timedelta(days=days * f), dose_per_day=d, classification=c)
            for f, d, c in sorted(programs)]
    record = {"programs": rows, "now": T0 + timedelta(days=days)}
    assert assert_apart(charts.dose_svg(record)) >= 2 * 5


def test_the_reported_collisions_are_gone() -> None:
    """Issue 16: "mL" sat over the top tick, and "low alarm" and "empty" (a day apart, at the
    right edge) sat over the projection line."""
    record = reservoir_record(20.0, 100, [(0.3, 0.2, 1.0), (0.6, 0.2, 1.0)], 0.25, 6.0, 1.0,
                              2.0)
    markup = charts.reservoir_svg(record)
    assert "low alarm" in markup and "empty" in markup and "refill by" in markup
    assert_apart(markup)
    svg = ET.fromstring(markup.split("</svg>")[0] + "</svg>")
    texts = {t.text: text_box(t) for t in svg.iter(f"{NS}text")}
    assert not overlap(texts["mL"], texts["20"])
    assert not overlap(texts["mL"], texts["10"])
