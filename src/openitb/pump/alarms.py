"""Alarm records: when each condition began, was acknowledged (silenced) and cleared."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CRITICAL = {
    "low_reservoir": False,
    "eri": False,
    "empty_reservoir": True,
    "end_of_service": True,
    "motor_stall": True,
    "memory_error": True,
}
ALARM_KINDS = tuple(CRITICAL)


@dataclass
class Alarm:
    kind: str
    raised_at: str  # ISO 8601 UTC
    reason: str = ""
    acknowledged_at: str | None = None
    cleared_at: str | None = None

    @property
    def critical(self) -> bool:
        return CRITICAL[self.kind]

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def sounding(self) -> bool:
        return self.active and self.acknowledged_at is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["critical"] = self.critical
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alarm:
        return cls(d["kind"], d["raised_at"], d.get("reason", ""), d.get("acknowledged_at"),
                   d.get("cleared_at"))


class AlarmBook:
    """Every alarm ever raised, at most one active per kind."""

    def __init__(self, history: list[Alarm] | None = None) -> None:
        self.history: list[Alarm] = history or []

    def active(self, kind: str) -> Alarm | None:
        for a in reversed(self.history):
            if a.kind == kind and a.active:
                return a
        return None

    def raise_(self, kind: str, at: str, reason: str = "") -> bool:
        if self.active(kind) is not None:
            return False
        self.history.append(Alarm(kind, at, reason))
        return True

    def clear(self, kind: str, at: str) -> bool:
        a = self.active(kind)
        if a is None:
            return False
        a.cleared_at = at
        return True

    def acknowledge(self, kind: str, at: str) -> bool:
        a = self.active(kind)
        if a is None or a.acknowledged_at is not None:
            return False
        a.acknowledged_at = at
        return True

    def tone(self) -> str:
        sounding = [a for a in self.history if a.sounding]
        if any(a.critical for a in sounding):
            return "two_tone"
        return "single_tone" if sounding else "silent"

    def to_list(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.history]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> AlarmBook:
        return cls([Alarm.from_dict(d) for d in items])
