"""The pump as the kernel sees it: one typed value built from the pump's own status report.

The wire's ``read_status`` answer and the controller's :meth:`PumpController.status_report` have
the same keys (one vocabulary); :func:`pump_state_from_status` turns either into a
:class:`PumpState`. Pure: it reads a mapping, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openitb.errors import InvalidInput
from openitb.pump.status import PumpStatus, parse_pump_status
from openitb.therapy.prescription import Prescription, parse_prescription


@dataclass(frozen=True)
class PatientLimitsState:
    """The patient-bolus limits the pump holds, and how many were used in the last 24 h."""

    dose_mcg: float
    duration_s: int
    lockout_s: int
    max_per_day: int


@dataclass(frozen=True)
class PumpState:
    """Everything a rule may read about the pump now.

    ``state_version`` counts the pump's state-changing commands and events; a write carrying
    ``expect_version`` is refused by the pump when it no longer matches (``precondition_failed``).
    """

    serial: str
    profile: str
    time: datetime
    status: PumpStatus
    running: bool
    state_version: int
    reservoir_estimate_ml: float
    reservoir_concentration: float  # mcg/mL in the reservoir (0: empty / never filled)
    program: Prescription | None
    program_concentration: float | None
    bolus_running_until: datetime | None
    low_alarm_ml: float
    path_volume_ml: float
    internal_volume_ml: float
    capacity_ml: float
    battery_days_left: float
    alarms: tuple[str, ...] = ()
    patient_limits: PatientLimitsState | None = None
    patient_boluses_used_today: int = 0
    patient_next_allowed: datetime | None = None

    @property
    def has_program(self) -> bool:
        return self.program is not None

    def fingerprint(self) -> dict[str, Any]:
        """What a review depends on, canonical (for the review token). Not the reservoir
        estimate or the clock, which drift every second; the version changes on every write."""
        return {
            "serial": self.serial,
            "profile": self.profile,
            "state_version": self.state_version,
            "status": self.status.value,
            "running": self.running,
            "program": self.program.to_dict() if self.program else None,
            "program_concentration": self.program_concentration,
            "reservoir_concentration": self.reservoir_concentration,
            "low_alarm_ml": self.low_alarm_ml,
            "bolus_running": self.bolus_running_until is not None,
            "patient_limits": (None if self.patient_limits is None else
                               [self.patient_limits.dose_mcg, self.patient_limits.duration_s,
                                self.patient_limits.lockout_s, self.patient_limits.max_per_day]),
        }


def parse_time(value: Any, field: str) -> datetime:
    """An aware ISO 8601 time from a status report, or InvalidInput naming the field."""
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(field, value, "an ISO 8601 date-time with a UTC offset") from None
    if t.tzinfo is None:
        raise InvalidInput(field, value, "an ISO 8601 date-time with a UTC offset")
    return t


def _num(status: Mapping[str, Any], key: str, default: float | None = None) -> float:
    v = status.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidInput(f"status.{key}", v, "a number")
    return float(v)


def pump_state_from_status(status: Mapping[str, Any]) -> PumpState:
    """Build the typed state from a pump status report (wire ``read_status`` or the
    controller's ``status_report()``); a missing or malformed field is an InvalidInput."""
    rx = status.get("program")
    program = parse_prescription(rx) if rx else None
    pc = status.get("program_concentration_mcg_per_ml")
    bru = status.get("bolus_running_until")
    pb = status.get("patient_bolus") or {}
    lim = pb.get("limits") if isinstance(pb, Mapping) else None
    limits = (PatientLimitsState(float(lim["dose_mcg"]), int(lim["duration_s"]),
                                 int(lim["lockout_s"]), int(lim["max_per_day"]))
              if isinstance(lim, Mapping) else None)
    nxt = pb.get("next_allowed") if isinstance(pb, Mapping) else None
    version = status.get("state_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput("status.state_version", version, "a whole number")
    return PumpState(
        serial=str(status.get("serial") or ""),
        profile=str(status["profile"]),
        time=parse_time(status["time"], "status.time"),
        status=parse_pump_status(status["state"]),
        running=bool(status.get("running")),
        state_version=version,
        reservoir_estimate_ml=max(0.0, _num(status, "reservoir_estimate_ml")),
        reservoir_concentration=_num(status, "reservoir_concentration_mcg_per_ml", 0.0),
        program=program,
        program_concentration=float(pc) if pc else None,
        bolus_running_until=parse_time(bru, "status.bolus_running_until") if bru else None,
        low_alarm_ml=_num(status, "low_alarm_ml"),
        path_volume_ml=_num(status, "path_volume_ml"),
        internal_volume_ml=_num(status, "internal_volume_ml"),
        capacity_ml=_num(status, "capacity_ml"),
        battery_days_left=_num(status, "battery_days_left", 0.0),
        alarms=tuple(str(a.get("kind")) for a in status.get("alarms") or ()
                     if isinstance(a, Mapping)),
        patient_limits=limits,
        patient_boluses_used_today=int(pb.get("used_today") or 0) if isinstance(pb, Mapping)
        else 0,
        patient_next_allowed=parse_time(nxt, "status.patient_bolus.next_allowed") if nxt else None,
    )
