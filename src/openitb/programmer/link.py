"""The programmer's connection to one pump: every read and write goes through here and into the
session record; a pump refusal becomes a RefusedOperation carrying the pump's code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from openitb.errors import RefusedOperation
from openitb.programmer.record import SessionRecord
from openitb.telemetry.client import ProgrammerClient, TelemetryError


class PumpRefused(RefusedOperation):
    """The pump (or the link) refused a command; ``code`` is the wire code."""


class ReadbackMismatch(RefusedOperation):
    """What the pump reports after a write differs from what was written."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("read-back after writing does not match: " + "; ".join(differences),
                         code="readback_mismatch")


class PumpLink:
    def __init__(self, client: ProgrammerClient, record: SessionRecord,
                 now: Callable[[], datetime]) -> None:
        self.client = client
        self.record = record
        self.now = now
        # The first interrogation after an MRI resumes a pump that waits for one; remember it
        # for the rest of the session (the post-MRI check may not be the first read).
        self.resumed_after_mri = False
        # The last status read in this session, while nothing was written since: a review may
        # start from it instead of reading again (reads never change the pump).
        self.last_status: dict[str, Any] | None = None
        self.last_status_at: datetime | None = None
        self.commands_sent = 0

    def _call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        self.commands_sent += 1
        try:
            return self.client.command(name, **args)
        except TelemetryError as exc:
            self.record.refused(self.now(), name, exc.code, exc.reason)
            raise PumpRefused(f"the pump refused {name}: {exc.reason}", code=exc.code) from None
        except (ConnectionError, OSError) as exc:
            self.record.refused(self.now(), name, "link", str(exc))
            raise PumpRefused(f"telemetry link lost during {name}: {exc}", code="link") from None

    def read_status(self) -> dict[str, Any]:
        status = self._call("read_status", {})
        self.record.read(self.now(), "status", {
            k: status.get(k) for k in ("state", "reservoir_estimate_ml", "program",
                                       "program_concentration_mcg_per_ml", "battery_days_left",
                                       "tone")})
        self.resumed_after_mri = self.resumed_after_mri or bool(status.get("resumed_after_mri"))
        if status.get("serial") and not self.record.pump:
            self.record.pump = str(status["serial"])
        self.last_status = status
        self.last_status_at = self.now()
        return status

    def fresh_status(self, max_age_s: float = 2.0) -> dict[str, Any] | None:
        """The last status if nothing was written since and it is at most ``max_age_s`` old on
        the programmer's clock (the pump runs on in between); else None."""
        if self.last_status is None or self.last_status_at is None:
            return None
        if abs((self.now() - self.last_status_at).total_seconds()) > max_age_s:
            return None
        return self.last_status

    def read_log(self, last: int = 20) -> list[dict[str, Any]]:
        entries = self._call("read_log", {"last": last}).get("entries", [])
        self.record.read(self.now(), "log", {"entries": len(entries)})
        return list(entries)

    def send(self, name: str, **args: Any) -> dict[str, Any]:
        self.last_status = None  # a write (or an attempt) makes the cached status stale
        return self._call(name, args)
