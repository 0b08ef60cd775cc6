"""Battery charge budget: drawn by the idle clock, by motor strokes and by telemetry (uAh)."""

from __future__ import annotations

from openitb.devices import PumpProfile

HOUR_S = 3600


def idle_uah_per_s(profile: PumpProfile) -> float:
    return profile.battery_idle_ua / HOUR_S


def drain_uah(profile: PumpProfile, seconds: float, strokes: int) -> float:
    """Charge used over ``seconds`` of idle clock plus ``strokes`` motor strokes."""
    return idle_uah_per_s(profile) * seconds + profile.battery_stroke_uah * strokes


def seconds_until_empty(profile: PumpProfile, remaining_uah: float, strokes_per_s: float) -> float:
    """Time until the charge runs out at a constant stroke rate (closed form)."""
    rate = idle_uah_per_s(profile) + profile.battery_stroke_uah * strokes_per_s
    return remaining_uah / rate if rate > 0 else float("inf")


def projected_days(profile: PumpProfile, remaining_uah: float, strokes_per_day: float) -> float:
    """Projected life at the current program's daily stroke count."""
    per_day = profile.battery_idle_ua * 24 + profile.battery_stroke_uah * strokes_per_day
    return remaining_uah / per_day if per_day > 0 else float("inf")


def telemetry_uah(profile: PumpProfile, seconds: float) -> float:
    """Charge used by ``seconds`` of telemetry (radio) at the profile's current."""
    return profile.battery_telemetry_ma * 1000 * seconds / HOUR_S
