"""When each pump will next alarm, from the projections ``_sync`` keeps on the pump's row; the
demo clock's "To next alarm" stops at the earliest of every pump's.

A pump raises four alarms on its own as time passes: low reservoir (``low_alarm_at``), empty
reservoir (``empty_at``), the elective replacement indicator (``eri_at``) and end of service (the
ERI plus the profile's ERI period). Each is projected from the same reservoir estimate and
battery model the pump alarms on (therapy/refill.py ``project_refill``; ``_sync``). The pump
raises the empty alarm when its estimate falls below one stroke, a little before the projected
zero: the clock stops ``STOP_AFTER`` past the projection so the alarm is in the inbox.

Pure: rows in, times out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from openitb.devices import get_pump

STOP_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class Forecast:
    pump_id: int
    kind: str  # an alarm kind (pump/alarms.py)
    at: datetime


def forecasts(pump_id: int, profile: str, low_alarm_at: datetime | None,
              empty_at: datetime | None, eri_at: datetime | None) -> list[Forecast]:
    """Every alarm one pump is projected to raise, past or future."""
    out = [Forecast(pump_id, kind, at) for kind, at in (
        ("low_reservoir", low_alarm_at), ("empty_reservoir", empty_at), ("eri", eri_at)) if at]
    if eri_at is not None:
        out.append(Forecast(pump_id, "end_of_service",
                            eri_at + timedelta(days=get_pump(profile).eri_days)))
    return out


def next_alarm(items: Iterable[Forecast], now: datetime) -> Forecast | None:
    """The earliest alarm of any pump after ``now`` (None: none is projected)."""
    ahead = [f for f in items if f.at > now]
    return min(ahead, key=lambda f: (f.at, f.pump_id, f.kind)) if ahead else None


def fleet_forecasts(rows: Iterable[Any]) -> list[Forecast]:
    """Forecasts of pump rows (id, profile, low_alarm_at, empty_at, eri_at)."""
    return [f for r in rows for f in forecasts(r.id, r.profile, r.low_alarm_at, r.empty_at,
                                               r.eri_at)]
