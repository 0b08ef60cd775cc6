"""Open a served pump from its state directory and run it behind the TCP server."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from openitb.errors import InvalidInput
from openitb.pump.controller import to_datetime
from openitb.pumpservice import store
from openitb.pumpservice.clock import VirtualClock, real_clock
from openitb.pumpservice.service import PumpService
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import start_server


def open_service(directory: Path, clock: str = "real", speed: float = 1.0,
                 now: Callable[[], datetime] = real_clock) -> tuple[PumpService, dict[Role, bytes]]:
    ident = store.load_identity(directory)
    keys = store.load_keys(directory)
    store.check_writable(directory)
    controller = store.load_controller(directory, ident, now())
    if clock == "real":
        if speed != 1.0:
            raise InvalidInput("speed", speed, "only with --clock virtual")
        tick: Callable[[], datetime] = now
    elif clock == "virtual":
        if not 0 < speed <= 1_000_000:
            raise InvalidInput("speed", speed, "above 0 and at most 1000000")
        tick = VirtualClock(to_datetime(controller.t), speed)
    else:
        raise InvalidInput("clock", clock, "real or virtual")
    service = PumpService(controller, tick, serial=ident.serial, book=store.load_book(directory),
                          save_book=lambda b: store.save_book(directory, b))
    return service, keys


def serve_forever(service: PumpService, keys: dict[Role, bytes], host: str, port: int,
                  ready: Callable[[int], None] = lambda p: None) -> None:
    async def main() -> None:
        server = await start_server(lambda: service.endpoint(keys), host, port)
        ready(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())
    service.checkpoint()  # clean shutdown: a fresh snapshot, nothing to replay next time
