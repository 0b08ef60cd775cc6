"""The one vocabulary of pump status, from the controller to the wire to the clinic."""

from __future__ import annotations

from enum import Enum


class PumpStatus(str, Enum):
    """What the pump is doing. The controller's ``state``, the wire's ``status["state"]`` and the
    safety kernel's :class:`openitb.safety.PumpState` all use these values."""

    RUNNING = "running"
    STOPPED = "stopped"
    EMPTY = "empty"
    MOTOR_STALL = "motor_stall"
    END_OF_SERVICE = "end_of_service"

    @property
    def infusing_possible(self) -> bool:
        return self in (PumpStatus.RUNNING,)


def parse_pump_status(text: object) -> PumpStatus:
    try:
        return PumpStatus(str(text))
    except ValueError:
        from openitb.errors import InvalidInput

        raise InvalidInput("state", text, "one of " + ", ".join(s.value for s in PumpStatus)
                           ) from None
