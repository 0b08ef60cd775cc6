"""Plug-flow catheter path with faults the pump cannot see.

The path (pump internal volume + catheter) is always full of liquid, so what the pump pushes in
pushes the same volume out further on: the oldest fluid leaves first. The path is held as two
pipes split at the fault position (volume from the pump end), each a FIFO of
``[volume_nl, concentration mcg/mL]`` parcels, oldest (nearest the outlet) first.

Faults:
- ``occlusion``: nothing moves (the motor strokes against a blocked line);
- ``kink`` with ``fraction`` f in (0, 1): only f of each stroke's volume moves; the rest stays in
  the reservoir, which a refill later finds as more left than expected;
- ``leak`` with ``fraction`` f in (0, 1]: at the position, f of what arrives goes to tissue and
  the rest goes on to the tip;
- ``disconnection``: everything that reaches the position goes to tissue; the catheter beyond it
  is stranded;
- ``none``: repaired.
"""

from __future__ import annotations

from typing import Any

FAULTS = ("none", "occlusion", "kink", "leak", "disconnection")

Parcels = list[tuple[int, float]]


class Pipe:
    """A FIFO of parcels exactly ``volume_nl`` long."""

    def __init__(self, volume_nl: int, parcels: list[list[float]] | None = None) -> None:
        self.volume_nl = volume_nl
        self.parcels: list[list[float]] = parcels if parcels is not None else []

    def push(self, inflow: Parcels) -> Parcels:
        """Put ``inflow`` in at the inlet; return what leaves the outlet (same total volume)."""
        if self.volume_nl == 0:
            return [(v, c) for v, c in inflow if v > 0]
        out: Parcels = []
        for volume, conc in inflow:
            if volume <= 0:
                continue
            if self.parcels and self.parcels[-1][1] == conc:
                self.parcels[-1][0] += volume
            else:
                self.parcels.append([volume, conc])
            excess = volume
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

    def outlet_concentration(self) -> float | None:
        return self.parcels[0][1] if self.parcels else None


def _split(parcels: list[list[float]], at_nl: int) -> tuple[list[list[float]], list[list[float]]]:
    """Split a pump-end-last list (outlet first) so that the inlet side holds ``at_nl``."""
    total = sum(int(v) for v, _ in parcels)
    outlet_nl = total - at_nl
    near_outlet: list[list[float]] = []
    rest = [list(p) for p in parcels]
    while outlet_nl > 0 and rest:
        v, c = rest[0]
        take = min(int(v), outlet_nl)
        near_outlet.append([take, c])
        outlet_nl -= take
        if take == v:
            rest.pop(0)
        else:
            rest[0][0] = v - take
    return rest, near_outlet  # (upstream: from the fault back to the pump, downstream)


class Catheter:
    def __init__(self, volume_nl: int, concentration: float = 0.0, ml_per_cm: float = 0.0026,
                 internal_nl: int = 0) -> None:
        self.volume_nl = volume_nl
        self.ml_per_cm = ml_per_cm
        self.internal_nl = min(internal_nl, volume_nl)
        parcels = [[float(volume_nl), concentration]] if volume_nl > 0 else []
        # Without a fault the whole path is the downstream pipe; the upstream pipe is empty.
        self.upstream = Pipe(0)
        self.downstream = Pipe(volume_nl, parcels)
        self.fault = "none"
        self.fraction = 1.0
        self.position_cm = 0.0

    @property
    def length_cm(self) -> float:
        return (self.volume_nl - self.internal_nl) / (self.ml_per_cm * 1e6)

    def _parcels(self) -> list[list[float]]:
        return [list(p) for p in self.downstream.parcels + self.upstream.parcels]

    def set_fault(self, kind: str, position_cm: float = 0.0, fraction: float = 1.0) -> None:
        """Set a fault (validated by the caller) and re-split the path at its position."""
        parcels = self._parcels()
        at_nl = 0
        if kind in ("leak", "disconnection"):
            at_nl = min(self.volume_nl, self.internal_nl + round(position_cm * self.ml_per_cm * 1e6))
        up, down = _split(parcels, at_nl)
        self.upstream = Pipe(at_nl, up)
        self.downstream = Pipe(self.volume_nl - at_nl, down)
        self.fault, self.fraction, self.position_cm = kind, fraction, position_cm

    def flow_factor(self) -> float:
        """The fraction of the pump's stroke volume that actually moves along the path."""
        if self.fault == "occlusion":
            return 0.0
        if self.fault == "kink":
            return self.fraction
        return 1.0

    def push(self, volume_nl: int, concentration: float) -> tuple[Parcels, Parcels]:
        """Push ``volume_nl`` in at the pump end: (parcels reaching the intrathecal space,
        parcels lost to tissue)."""
        if volume_nl <= 0:
            return [], []
        at_fault = self.upstream.push([(volume_nl, concentration)])
        if self.fault == "disconnection":
            return [], at_fault
        tissue: Parcels = []
        if self.fault == "leak":
            onward: Parcels = []
            for v, c in at_fault:
                lost = round(v * self.fraction)
                if lost:
                    tissue.append((lost, c))
                if v - lost:
                    onward.append((v - lost, c))
            at_fault = onward
        return self.downstream.push(at_fault), tissue

    def tip_concentration(self) -> float:
        for pipe in (self.downstream, self.upstream):
            c = pipe.outlet_concentration()
            if c is not None:
                return c
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"volume_nl": self.volume_nl, "internal_nl": self.internal_nl,
                "ml_per_cm": self.ml_per_cm, "fault": self.fault, "fraction": self.fraction,
                "position_cm": self.position_cm, "split_nl": self.upstream.volume_nl,
                "parcels": [[int(v), c] for v, c in self._parcels()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Catheter:
        c = cls(d["volume_nl"], ml_per_cm=d.get("ml_per_cm", 0.0026),
                internal_nl=d.get("internal_nl", 0))
        parcels = [[int(v), float(k)] for v, k in d["parcels"]]
        split = d.get("split_nl", 0)
        up, down = _split(parcels, split)
        c.upstream, c.downstream = Pipe(split, up), Pipe(c.volume_nl - split, down)
        c.fault, c.fraction = d["fault"], d.get("fraction", 1.0)
        c.position_cm = d.get("position_cm", 0.0)
        return c
