"""The clinic's pump port driven through the clinician programmer over telemetry.

For each use case :class:`TelemetryPumpGateway` restores the patient's virtual pump (the
controller snapshot kept in ``Pump.state``), puts a :class:`PumpService` in front of it with the
pump's own role keys, and opens ONE clinician session over the in-process transport (the same
signed frames as TCP, only without a socket). The use case (or the programmer workflow it hands
the link to) reads, writes and reads back over that session; the session engine itself is
:class:`~openitb.clinic.pumps.PumpGateway`, shared with the frameless
:class:`~openitb.clinic.pumps.ControllerGateway`.

Keys: nothing is stored. Each pump's role keys are derived from one server secret and the pump's
serial, ``HMAC-SHA256(secret, "openitb-pump-key|" + serial + "|" + role)``, so the pump service
rebuilt for every session holds the same keys as the clinic's programmer. The secret is
``OPENITB_TELEMETRY_SECRET`` (at least 16 bytes) or, if unset, 32 random bytes made once per
process (the pumps are rebuilt from their snapshots by this same process, so nothing else needs
it).

What the clinic sees comes over the link: the status of each ``read_status`` and each command's
answer. Two things do not: the passing of time (``advance_to`` runs the pump to the clinic's
clock, as the implanted pump would on its own) and an MRI scan (an environment event injected
into the pump, not a command). ``read_status`` carries only the alarms sounding now, so the
alarm history the inbox needs (raised and cleared since the last sync) is taken from the pump's
stored history.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from typing import Any

from openitb.clinic.pumps import Clock, PumpGateway
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role

_Clock = Clock  # the name the tests' faulty pumps use

SECRET_ENV = "OPENITB_TELEMETRY_SECRET"
MIN_SECRET_BYTES = 16


class TelemetryPumpGateway(PumpGateway):
    """:class:`~openitb.clinic.pumps.PumpGateway` through the programmer over telemetry."""

    def __init__(self, secret: bytes | None = None, *, who: str = "clinic") -> None:
        if secret is None:
            env = os.environ.get(SECRET_ENV, "")
            secret = env.encode() if env else secrets.token_bytes(32)
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"{SECRET_ENV}: at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
        super().__init__()
        self._secret = secret
        self.who = who

    # ---- keys and the client ---------------------------------------------------------------
    def keys(self, serial: str) -> dict[Role, bytes]:
        if not serial:
            raise ValueError("a pump without a serial has no telemetry keys")
        return {role: hmac.new(self._secret, f"openitb-pump-key|{serial}|{role.value}".encode(),
                               hashlib.sha256).digest() for role in Role}

    def _client(self, service: PumpService, serial: str) -> tuple[Any, Callable[[], int]]:
        keys = self.keys(serial)
        transport = InProcessTransport(lambda: service.endpoint(keys))
        return (ProgrammerClient(transport, Role.CLINICIAN, keys[Role.CLINICIAN]),
                lambda: transport.frames)
