"""Transports that carry the same frames as TCP without a socket (tests, simulation, clinic)."""

from __future__ import annotations

from collections.abc import Callable

from openitb.telemetry.session import PumpEndpoint


class InProcessTransport:
    """One connection to a pump: a fresh endpoint (its own session), frames in and out as bytes.

    Frames are encoded, authenticated and decoded exactly as over TCP; only the socket is gone.
    """

    def __init__(self, endpoint_factory: Callable[[], PumpEndpoint]) -> None:
        self._endpoint = endpoint_factory()
        self.frames = 0

    def __call__(self, data: bytes) -> bytes:
        self.frames += 1
        return self._endpoint.handle(bytes(data))

    def close(self) -> None:
        pass
