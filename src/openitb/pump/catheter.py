"""Plug-flow catheter: a FIFO of (volume_nl, concentration mcg/mL) parcels, oldest at the tip.

The path (pump internal volume + catheter) is always full: what goes in pushes the same volume
out of the front. Occlusion: nothing moves. Disconnection: what leaves goes to tissue.
"""

from __future__ import annotations

from typing import Any

FAULTS = ("none", "occlusion", "disconnection")


class Catheter:
    def __init__(self, volume_nl: int, concentration: float = 0.0) -> None:
        self.volume_nl = volume_nl
        self.parcels: list[list[float]] = [[volume_nl, concentration]] if volume_nl > 0 else []
        self.fault = "none"

    def push(self, volume_nl: int, concentration: float) -> list[tuple[int, float]]:
        """Put ``volume_nl`` in at the pump end; return the parcels that leave the far end."""
        if volume_nl <= 0:
            return []
        if self.volume_nl == 0:
            return [(volume_nl, concentration)]
        if self.parcels and self.parcels[-1][1] == concentration:
            self.parcels[-1][0] += volume_nl
        else:
            self.parcels.append([volume_nl, concentration])
        out: list[tuple[int, float]] = []
        excess = volume_nl
        while excess > 0:
            v, c = self.parcels[0]
            take = min(int(v), excess)
            out.append((take, c))
            excess -= take
            if take == v:
                self.parcels.pop(0)
            else:
                self.parcels[0][0] = v - take
        return out

    def tip_concentration(self) -> float:
        return self.parcels[0][1] if self.parcels else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"volume_nl": self.volume_nl, "parcels": [[int(v), c] for v, c in self.parcels],
                "fault": self.fault}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Catheter:
        c = cls(d["volume_nl"])
        c.parcels = [[int(v), float(k)] for v, k in d["parcels"]]
        c.fault = d["fault"]
        return c
