"""Commands to the pump (from the programmer) and environment events, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openitb.therapy.prescription import Prescription
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters


@dataclass(frozen=True)
class SetClock:
    pump_time: datetime


@dataclass(frozen=True)
class Program:
    prescription: Prescription
    concentration: McgPerMl


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class ClinicianBolus:
    dose: Micrograms
    duration: Hours
    by_patient: bool = False  # given for the patient therapy manager (logged as such)


@dataclass(frozen=True)
class PrimingBolus:
    """Move ``volume`` (the path to fill) over ``duration``, in place of the basal rate."""

    volume: Milliliters
    duration: Hours


@dataclass(frozen=True)
class BridgeBolus:
    """After a concentration change: push the old drug still in the path (``volume``) out over
    ``duration`` (at the old flow), in place of the basal rate."""

    volume: Milliliters
    duration: Hours


@dataclass(frozen=True)
class Refill:
    """Entered after the physical refill: the new reservoir volume and concentration."""

    volume: Milliliters
    concentration: McgPerMl


@dataclass(frozen=True)
class SetLowAlarm:
    threshold: Milliliters


@dataclass(frozen=True)
class AcknowledgeAlarm:
    kind: str


@dataclass(frozen=True)
class AlarmTest:
    pass


@dataclass(frozen=True)
class ReadStatus:
    pass


@dataclass(frozen=True)
class ReadLog:
    page: int = 0
    page_size: int = 50


# Environment events (not from the programmer) ------------------------------------------------
@dataclass(frozen=True)
class MriStart:
    pass


@dataclass(frozen=True)
class MriEnd:
    pass


@dataclass(frozen=True)
class PowerOnReset:
    pass


@dataclass(frozen=True)
class PocketFill:
    """At a refill, ``volume`` of the drug meant for the reservoir went into the pump pocket
    (subcutaneous tissue) instead. The pump cannot see it: its estimate keeps the full fill, the
    true reservoir holds less, and the drug in the pocket reaches the patient systemically."""

    volume: Milliliters


@dataclass(frozen=True)
class CatheterFault:
    """A catheter fault the pump cannot see (see ``pump.catheter``): "occlusion", "kink" (only
    ``fraction`` of the flow passes), "leak" (``fraction`` of the flow goes to tissue at
    ``position_cm`` from the pump connector), "disconnection" (at ``position_cm``), or "none"
    (repaired)."""

    kind: str
    position_cm: float = 0.0
    fraction: float = 1.0


Command = (SetClock | Program | Start | Stop | ClinicianBolus | PrimingBolus | BridgeBolus | Refill | SetLowAlarm
           | AcknowledgeAlarm | AlarmTest | ReadStatus | ReadLog | MriStart | MriEnd
           | PowerOnReset | CatheterFault | PocketFill)


@dataclass(frozen=True)
class Response:
    ok: bool
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
