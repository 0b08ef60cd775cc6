"""Clocks for a served pump: the wall clock, a virtual clock running at a speed, a manual one."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def real_clock() -> datetime:
    return datetime.now(UTC)


class VirtualClock:
    """Starts at ``start`` and runs ``speed`` times faster than the monotonic clock."""

    def __init__(self, start: datetime, speed: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < speed <= 1_000_000:
            raise ValueError("speed must be above 0 and at most 1e6")
        self.start = start
        self.speed = speed
        self._mono = monotonic
        self._t0 = monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(self._mono() - self._t0) * self.speed)


class ManualClock:
    """A clock that moves only when told (tests, scripted scenarios)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self.now += delta
        return self.now
