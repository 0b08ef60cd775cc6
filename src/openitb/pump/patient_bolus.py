"""Patient-activated bolus limits, enforced on the pump side (pure).

The clinician sets a dose per activation, the time it is given over, a lockout interval from one
activation to the next and a maximum number of activations in any 24 h (a rolling window). The
pump keeps the times of recent activations; a request is allowed only inside every limit, and a
refusal says which limit and when the next activation is allowed.

Times are integer seconds since the epoch (the controller's clock), passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY_S = 86_400
MAX_ACTIVATIONS_PER_DAY = 24  # (R) configurable default: at most one an hour on average
MIN_LOCKOUT_S = 600  # (R) 10 min
MAX_DOSE_MCG = 200.0  # (R) the pump's own ceiling, above any label screening dose (100 mcg)


class PatientBolusRefused(Exception):
    def __init__(self, code: str, reason: str, next_allowed_s: int | None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.next_allowed_s = next_allowed_s


@dataclass(frozen=True)
class PatientBolusLimits:
    dose_mcg: float
    duration_s: int
    lockout_s: int
    max_per_day: int

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.dose_mcg <= MAX_DOSE_MCG:
            out.append(f"dose per activation {self.dose_mcg:g} mcg must be above 0 and at most "
                       f"{MAX_DOSE_MCG:g} mcg")
        if not 60 <= self.duration_s <= 4 * 3600:
            out.append(f"bolus duration {self.duration_s} s must be 1 min to 4 h")
        if not max(MIN_LOCKOUT_S, self.duration_s) <= self.lockout_s <= DAY_S:
            out.append(f"lockout {self.lockout_s} s must be at least the bolus duration and "
                       f"{MIN_LOCKOUT_S // 60} min, and at most 24 h")
        if not 1 <= self.max_per_day <= MAX_ACTIVATIONS_PER_DAY:
            out.append(f"maximum activations per day {self.max_per_day} must be 1 to "
                       f"{MAX_ACTIVATIONS_PER_DAY}")
        if self.max_per_day * self.lockout_s > DAY_S:
            out.append(f"{self.max_per_day} activations with a lockout of {self.lockout_s} s "
                       "do not fit in 24 h")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dose_mcg": self.dose_mcg, "duration_s": self.duration_s,
                "lockout_s": self.lockout_s, "max_per_day": self.max_per_day}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatientBolusLimits:
        return cls(float(d["dose_mcg"]), int(d["duration_s"]), int(d["lockout_s"]),
                   int(d["max_per_day"]))


@dataclass
class PatientBolusBook:
    """The limits (None: patient boluses disabled) and the times of recent activations."""

    limits: PatientBolusLimits | None = None
    activations: list[int] = field(default_factory=list)

    def _recent(self, now_s: int) -> list[int]:
        return [t for t in self.activations if now_s - t < DAY_S]

    def next_allowed(self, now_s: int) -> int | None:
        """The earliest time an activation is allowed (``now_s`` if now); None if disabled."""
        if self.limits is None:
            return None
        recent = sorted(self._recent(now_s))
        at = now_s
        if recent:
            at = max(at, recent[-1] + self.limits.lockout_s)
        if len(recent) >= self.limits.max_per_day:
            # The window frees a place when the oldest counted activation turns 24 h old.
            at = max(at, recent[len(recent) - self.limits.max_per_day] + DAY_S)
        return at

    def check(self, now_s: int) -> PatientBolusLimits:
        """Return the limits if an activation is allowed now; raise PatientBolusRefused if not."""
        if self.limits is None:
            raise PatientBolusRefused("ptm_disabled", "patient boluses are not enabled: the "
                                      "clinician has set no patient bolus limits", None)
        lim = self.limits
        recent = sorted(self._recent(now_s))
        nxt = self.next_allowed(now_s)
        assert nxt is not None
        if len(recent) >= lim.max_per_day:
            raise PatientBolusRefused(
                "ptm_daily_limit", f"the maximum of {lim.max_per_day} activations in 24 h has "
                "been reached", nxt)
        if recent and now_s - recent[-1] < lim.lockout_s:
            raise PatientBolusRefused(
                "ptm_lockout", f"lockout: {lim.lockout_s // 60} min must pass between "
                f"activations (last one {(now_s - recent[-1]) // 60} min ago)", nxt)
        return lim

    def record(self, now_s: int) -> None:
        self.activations = self._recent(now_s) + [now_s]

    def forget(self, at_s: int) -> None:
        """Undo a recorded activation that the pump then refused."""
        if at_s in self.activations:
            self.activations.remove(at_s)

    def used_today(self, now_s: int) -> int:
        return len(self._recent(now_s))

    def to_dict(self) -> dict[str, Any]:
        return {"limits": self.limits.to_dict() if self.limits else None,
                "activations": list(self.activations)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatientBolusBook:
        lim = d.get("limits")
        return cls(PatientBolusLimits.from_dict(lim) if lim else None,
                   [int(t) for t in d.get("activations", [])])
