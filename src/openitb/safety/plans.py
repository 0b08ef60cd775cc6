"""Priming and bridge boluses the pump accepts by construction.

The pump gives a volume bolus as whole strokes over whole seconds (``round(hours * 3600)``), and
refuses one whose flow exceeds its bolus flow limit. So the duration is computed in whole seconds
and rounded *up*: volume / duration never exceeds the limit, after the pump's own rounding. A
bridge longer than the pump's longest bolus (24 h) gives what the pump can (24 h at the old flow)
and leaves the rest of the path unbridged, which the refill review marks for an override.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openitb.devices import PumpProfile
from openitb.therapy.prescription import DAY_S

MIN_BOLUS_S = 60  # the pump's shortest bolus (controller: 1 min to 24 h)
MAX_BOLUS_S = DAY_S  # the pump's longest bolus


@dataclass(frozen=True)
class VolumeBolus:
    strokes: int
    volume_ml: float  # strokes x nominal stroke: exactly what the pump moves
    seconds: int

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def flow_ml_per_hour(self) -> float:
        return self.volume_ml / self.hours if self.seconds else 0.0

    def wire_args(self) -> dict[str, str]:
        return {"volume": f"{self.volume_ml!r} mL", "duration": f"{self.hours!r} h"}


def strokes_for(profile: PumpProfile, volume_ml: float) -> int:
    """Whole strokes the pump gives for ``volume_ml`` (it floors, as the controller does)."""
    return max(0, round(volume_ml * 1_000_000) // profile.stroke_volume_nl)


def fastest_seconds(profile: PumpProfile, strokes: int) -> int:
    """The shortest whole-second duration at or under the bolus flow limit (rounded up)."""
    nl = strokes * profile.stroke_volume_nl
    exact = nl * 3600 / (profile.bolus_max_flow_ml_per_hour * 1_000_000)
    s = math.ceil(exact - 1e-9)
    while s > 0 and nl * 3600 / (s * 1_000_000) > profile.bolus_max_flow_ml_per_hour + 1e-12:
        s += 1  # float guard: never above the limit the pump checks
    return max(MIN_BOLUS_S, s)


def priming_bolus(profile: PumpProfile, path_ml: float) -> VolumeBolus | None:
    """Fill ``path_ml`` at the bolus flow limit; None if it is less than one stroke. A path that
    takes longer than the longest bolus is given over 24 h (the flow then is below the limit)."""
    strokes = strokes_for(profile, path_ml)
    if strokes < 1:
        return None
    seconds = min(MAX_BOLUS_S, fastest_seconds(profile, strokes))
    if strokes * profile.stroke_volume_nl * 3600 / (seconds * 1e6) > \
            profile.bolus_max_flow_ml_per_hour + 1e-12:
        # More than one day at the limit: give what one day at the limit moves.
        strokes = int(profile.bolus_max_flow_ml_per_hour * 24 * 1e6) // profile.stroke_volume_nl
    return VolumeBolus(strokes, strokes * profile.stroke_volume_nl / 1e6, seconds)


@dataclass(frozen=True)
class BridgeSplit:
    bolus: VolumeBolus | None  # None: nothing the pump can give (under a stroke or a minute)
    path_ml: float
    needed_seconds: float  # the path at the old flow
    unbridged_ml: float


def bridge_bolus(profile: PumpProfile, path_ml: float, old_flow_ml_per_day: float) -> BridgeSplit:
    """Push the path out at the old flow; at most the pump's longest bolus (24 h)."""
    if old_flow_ml_per_day <= 0:
        return BridgeSplit(None, path_ml, math.inf, path_ml)
    needed = path_ml / old_flow_ml_per_day * DAY_S
    seconds = min(MAX_BOLUS_S, math.ceil(needed - 1e-9))
    given_ml = min(path_ml, old_flow_ml_per_day * seconds / DAY_S)
    strokes = strokes_for(profile, given_ml)
    if strokes < 1 or seconds < MIN_BOLUS_S:
        return BridgeSplit(None, path_ml, needed, path_ml)
    # never above the bolus flow limit (a large old flow): stretch to the limit's duration
    seconds = min(MAX_BOLUS_S, max(seconds, fastest_seconds(profile, strokes)))
    b = VolumeBolus(strokes, strokes * profile.stroke_volume_nl / 1e6, seconds)
    return BridgeSplit(b, path_ml, needed, max(0.0, path_ml - b.volume_ml))
