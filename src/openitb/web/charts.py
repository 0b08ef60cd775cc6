"""Inline SVG charts for the patient page: reservoir volume with its projection (low-reservoir
alarm, refill-by, empty), and the daily dose over time. No JavaScript, readable by a screen
reader through their titles and the tables beside them."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 56, 16, 16, 36


def _scale(points: list[tuple[datetime, float]], y_max: float) -> tuple[Any, Any]:
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return PAD_L + (t - t0).total_seconds() / span * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (1 - v / y_max) * (H - PAD_T - PAD_B)

    return x, y


def _frame(title: str, desc: str, y_max: float, unit: str, t0: datetime, t1: datetime) -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-labelledby="t-{id(title)} d-{id(title)}" class="chart">',
           f'<title id="t-{id(title)}">{escape(title)}</title>',
           f'<desc id="d-{id(title)}">{escape(desc)}</desc>',
           f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>',
           f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>']
    for frac in (0, 0.5, 1):
        v = y_max * frac
        yy = PAD_T + (1 - frac) * (H - PAD_T - PAD_B)
        out.append(f'<text x="{PAD_L - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:.4g}</text>')
    out.append(f'<text x="{PAD_L - 6}" y="{PAD_T - 4}" text-anchor="end">{escape(unit)}</text>')
    out.append(f'<text x="{PAD_L}" y="{H - 12}">{t0:%Y-%m-%d}</text>')
    out.append(f'<text x="{W - PAD_R}" y="{H - 12}" text-anchor="end">{t1:%Y-%m-%d}</text>')
    return out


def reservoir_svg(record: dict[str, Any]) -> str:
    pump = record["pump"]
    if pump is None:
        return ""
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
    x, y = _scale(all_pts, y_max)
    t0, t1 = min(t for t, _ in all_pts), max(t for t, _ in all_pts)
    desc = (f"Reservoir {pump.reservoir_ml:.1f} mL now; "
            + (f"low-reservoir alarm {pump.low_alarm_at:%Y-%m-%d}; " if pump.low_alarm_at else "")
            + (f"refill by {pump.refill_by:%Y-%m-%d}; " if pump.refill_by else "")
            + (f"empty {pump.empty_at:%Y-%m-%d}" if pump.empty_at else ""))
    out = _frame("Reservoir volume and projection", desc, y_max, "mL", t0, t1)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(pts))
    out.append(f'<path d="{path}" class="series"/>')
    if proj:
        ppath = f"M{x(now):.1f},{y(pump.reservoir_ml):.1f} " + " ".join(
            f"L{x(t):.1f},{y(v):.1f}" for t, v, _ in proj)
        out.append(f'<path d="{ppath}" class="projection"/>')
        for i, (t, v, label) in enumerate(proj):
            # The projected dates sit at the right edge and close together: right-aligned
            # labels, stacked, so they neither clip nor overlap.
            lift = 8 + 16 * (len(proj) - 1 - i)
            out.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="4" class="marker"/>')
            out.append(f'<text x="{x(t) - 6:.1f}" y="{y(v) - lift:.1f}" text-anchor="end">'
                       f'{escape(label)} {t:%m-%d}</text>')
    if pump.refill_by and t0 <= pump.refill_by <= t1:
        xr = x(pump.refill_by)
        out.append(f'<line x1="{xr:.1f}" y1="{PAD_T}" x2="{xr:.1f}" y2="{H - PAD_B}" '
                   f'class="refill-by"/><text x="{xr:.1f}" y="{PAD_T + 10}" '
                   f'text-anchor="middle">refill by {pump.refill_by:%m-%d}</text>')
    xn = x(now)
    out.append(f'<line x1="{xn:.1f}" y1="{PAD_T}" x2="{xn:.1f}" y2="{H - PAD_B}" class="now"/>')
    out.append("</svg>")
    return "\n".join(out)


def dose_svg(record: dict[str, Any]) -> str:
    programs = record["programs"]
    if not programs:
        return ""
    now: datetime = record["now"]
    pts: list[tuple[datetime, float]] = []
    for p in programs:
        if pts:
            pts.append((p.at, pts[-1][1]))
        pts.append((p.at, p.dose_per_day))
    pts.append((now, pts[-1][1]))
    y_max = max(v for _, v in pts) * 1.2 or 1.0
    x, y = _scale(pts, y_max)
    t0, t1 = pts[0][0], now
    out = _frame("Daily dose", f"Daily dose now {pts[-1][1]:.4g} mcg/day over "
                 f"{len(programs)} programs", y_max, "mcg/day", t0, t1)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(pts))
    out.append(f'<path d="{path}" class="series"/>')
    for p in programs:
        cls = "marker" if p.classification == "within" else "marker warn"
        out.append(f'<circle cx="{x(p.at):.1f}" cy="{y(p.dose_per_day):.1f}" r="4" class="{cls}">'
                   f'<title>{p.at:%Y-%m-%d}: {p.dose_per_day:.4g} mcg/day '
                   f'({escape(p.classification)})</title></circle>')
    out.append("</svg>")
    return "\n".join(out)
