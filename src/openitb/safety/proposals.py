"""What someone proposes to write to a pump. Frozen values; the kernel decides (openitb.safety).

Each proposal names its ``action`` (a key of the permission table in ``data/roles.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from openitb.drugs import Context
from openitb.therapy.prescription import Prescription
from openitb.units import Hours, McgPerMl, Micrograms, Milliliters


@dataclass(frozen=True)
class ProgramChange:
    """A new program in any mode (continuous, flex, single bolus, periodic bolus), at the
    concentration the reservoir holds. A program that ends continuous delivery is a stop of
    therapy (rule ``therapy.stop``)."""

    prescription: Prescription
    context: Context = Context.MAINTENANCE
    action: str = "program"


@dataclass(frozen=True)
class StopTherapy:
    """Stop infusion (withdrawal risk: physician only, with a reason)."""

    action: str = "stop_therapy"


@dataclass(frozen=True)
class StartTherapy:
    """Start or restart the program in the pump (also after an MRI)."""

    action: str = "start"


@dataclass(frozen=True)
class ClinicianBolus:
    dose: Micrograms
    duration: Hours
    action: str = "clinician_bolus"


@dataclass(frozen=True)
class PatientLimits:
    """Limits for the patient therapy manager (enforced again by the pump)."""

    dose: Micrograms
    duration: Hours
    lockout: Hours
    max_per_day: int
    action: str = "patient_limits"


@dataclass(frozen=True)
class PatientBolusRequest:
    """The patient asks for a bolus within the limits (PTM)."""

    action: str = "patient_bolus"


@dataclass(frozen=True)
class LowAlarm:
    threshold: Milliliters
    action: str = "low_alarm"


@dataclass(frozen=True)
class Refill:
    """After the physical refill: what was withdrawn (measured), the product and concentration
    now in the reservoir, its volume; a bridge bolus at a concentration change unless declined;
    optionally a new program written with the refill (else the current one, rewritten at the new
    concentration when it changes)."""

    withdrawn: Milliliters
    product: str
    concentration: McgPerMl
    volume: Milliliters
    bridge: bool = True
    prescription: Prescription | None = None
    context: Context = Context.MAINTENANCE
    compounded: bool = False
    action: str = "refill"


@dataclass(frozen=True)
class Implant:
    """A new pump: fill, program, start, prime the pump path and the catheter."""

    prescription: Prescription
    product: str
    concentration: McgPerMl
    volume: Milliliters
    action: str = "implant"


@dataclass(frozen=True)
class Replacement:
    """A replacement pump on an implanted catheter: fill, program, start, prime the new pump's
    internal path (and the whole catheter when it was replaced too). The program is checked
    against the history of the pump it replaces (``ReviewInputs.history``)."""

    prescription: Prescription
    product: str
    concentration: McgPerMl
    volume: Milliliters
    new_catheter: bool = False
    context: Context = Context.MAINTENANCE
    action: str = "replacement"


@dataclass(frozen=True)
class Priming:
    """A priming bolus on its own (the scenario runner's ``priming`` event): fill the pump path
    and catheter (``volume`` None: the whole path, planned by the kernel) over ``duration``
    (None: as fast as the pump's bolus limit allows, rounded up to whole seconds)."""

    volume: Milliliters | None = None
    duration: Hours | None = None
    action: str = "priming"


Proposal = (Priming | ProgramChange | StopTherapy | StartTherapy | ClinicianBolus | PatientLimits
            | PatientBolusRequest | LowAlarm | Refill | Implant | Replacement)
