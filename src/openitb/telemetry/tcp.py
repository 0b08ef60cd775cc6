"""TCP transport on loopback: an asyncio server around a PumpEndpoint, and a blocking client.

Frames are self-delimiting (the 12-byte header gives the length), so the stream needs no other
framing. A header that cannot start a frame gets an ERROR and the connection is closed, because
the reader can no longer find the next frame boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from openitb.telemetry.frames import HEADER, Frame, FrameError, MessageType, encode, frame_length
from openitb.telemetry.session import PumpEndpoint

READ_TIMEOUT_S = 30.0


async def _serve_connection(
    endpoint_factory: Callable[[], PumpEndpoint],
    lock: asyncio.Lock,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    endpoint = endpoint_factory()
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(HEADER.size), READ_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                total = frame_length(head)
            except FrameError as exc:
                writer.write(encode(Frame(MessageType.ERROR, 0, {"code": exc.code,
                                                                 "reason": exc.reason}), bytes(32)))
                await writer.drain()
                return
            try:
                rest = await asyncio.wait_for(reader.readexactly(total - HEADER.size),
                                              READ_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            async with lock:  # one command at a time reaches the pump
                reply = endpoint.handle(head + rest)
            writer.write(reply)
            await writer.drain()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def start_server(
    endpoint_factory: Callable[[], PumpEndpoint], host: str = "127.0.0.1", port: int = 0
) -> asyncio.Server:
    """Serve on loopback; ``port=0`` picks a free port (see ``server.sockets[0]``)."""
    lock = asyncio.Lock()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # Top-level connection task: a shutdown cancels it; end quietly, the socket is closed.
        with contextlib.suppress(asyncio.CancelledError):
            await _serve_connection(endpoint_factory, lock, r, w)

    return await asyncio.start_server(handler, host, port)


class TcpTransport:
    """Blocking client transport: send one frame, read one frame."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the pump closed the connection")
            buf += chunk
        return bytes(buf)

    def __call__(self, data: bytes) -> bytes:
        self._sock.sendall(data)
        head = self._read(HEADER.size)
        return head + self._read(frame_length(head) - HEADER.size)

    def close(self) -> None:
        self._sock.close()


class ServerThread:
    """Run a telemetry server on its own event loop in a background thread (tests, benches)."""

    def __init__(self, endpoint_factory: Callable[[], PumpEndpoint], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(start_server(endpoint_factory, host, port))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _shutdown(self) -> None:
        self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
