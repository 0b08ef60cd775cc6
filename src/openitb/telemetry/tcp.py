"""TCP transport on loopback: an asyncio server around a PumpEndpoint, and a blocking client.

Frames are self-delimiting (the 12-byte header gives the length), so the stream needs no other
framing. A header that cannot start a frame gets an ERROR and the connection is closed, because
the reader can no longer find the next frame boundary. Connections are capped and peers without
a session have a budget (see the constants below); logging is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from openitb.telemetry.frames import HEADER, Frame, FrameError, MessageType, encode, frame_length
from openitb.telemetry.session import PumpEndpoint, Role

T = TypeVar("T")

# A peer without a session has this long for each frame, and a frame once started must be
# complete within it. An authenticated link stays open as long as its session can live
# (PumpEndpoint.timeout_s, 300 s by default) plus IDLE_GRACE_S, so that an expired session is
# told so by an ERROR rather than by a dropped link. docs/telemetry.md "Timeouts".
READ_TIMEOUT_S = 10.0
IDLE_GRACE_S = 5.0
# Budget for peers without a session: at most this many refused frames before the connection is
# closed (a genuine programmer gives up after its first refused HELLO), and at most this many
# such connections at once; a new one closes the oldest, so a flood of connections cannot
# exhaust file descriptors, and a programmer whose handshake takes a round trip gets through.
MAX_REFUSED_WITHOUT_SESSION = 2
MAX_UNAUTHENTICATED = 32
# Sessions per role at once; a new one closes the oldest of the same role, so a patient key
# holder opening sessions cannot lock the clinician out.
MAX_SESSIONS_PER_ROLE = 32
FD_RESERVE = 32


def connection_caps(fd_limit: int | None = None) -> tuple[int, int]:
    """(unauthenticated connections, sessions per role) within the process's descriptor limit."""
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = max(3, fd_limit - FD_RESERVE) if fd_limit > 0 else 1 << 20
    unauth = max(1, min(MAX_UNAUTHENTICATED, room // 3))
    per_role = max(1, min(MAX_SESSIONS_PER_ROLE, room // 3))
    return unauth, per_role


class BoundedLog:
    """At most ``per_minute`` lines a minute, one line each (no tracebacks), then one summary
    line of how many were left out: a flood of bad peers cannot fill the disk."""

    def __init__(self, per_minute: int = 20, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._log = logger or logging.getLogger("openitb.telemetry")
        self._window = clock()
        self._count = 0
        self.suppressed = 0
        self.total = 0

    def __call__(self, message: str) -> None:
        self.total += 1
        now = self._clock()
        if now - self._window >= 60.0:
            if self.suppressed:
                self._log.warning("telemetry: %d similar messages left out in the last minute",
                                  self.suppressed)
            self._window, self._count, self.suppressed = now, 0, 0
        if self._count >= self._per_minute:
            self.suppressed += 1
            return
        self._count += 1
        self._log.warning("telemetry: %s", message[:200])


class ConnectionGate:
    """Which connections exist, with or without a session; closes the oldest over a cap."""

    def __init__(self, max_unauthenticated: int, max_per_role: int) -> None:
        self.max_unauthenticated = max_unauthenticated
        self.max_per_role = max_per_role
        self._unauth: OrderedDict[int, asyncio.StreamWriter] = OrderedDict()
        self._sessions: dict[Role, OrderedDict[int, asyncio.StreamWriter]] = {
            r: OrderedDict() for r in Role}
        self.closed_over_cap = 0

    @property
    def unauthenticated(self) -> int:
        return len(self._unauth)

    @property
    def sessions(self) -> int:
        return sum(len(d) for d in self._sessions.values())

    def _evict(self, table: OrderedDict[int, asyncio.StreamWriter], cap: int) -> None:
        while len(table) > cap:
            _, writer = table.popitem(last=False)
            self.closed_over_cap += 1
            writer.transport.abort()

    def place(self, key: int, writer: asyncio.StreamWriter, role: Role | None) -> None:
        """Record the connection's current standing (no session, or a session of ``role``)."""
        self.remove(key)
        if role is None:
            self._unauth[key] = writer
            self._evict(self._unauth, self.max_unauthenticated)
        else:
            self._sessions[role][key] = writer
            self._evict(self._sessions[role], self.max_per_role)

    def remove(self, key: int) -> None:
        self._unauth.pop(key, None)
        for d in self._sessions.values():
            d.pop(key, None)


async def _within(aw: Awaitable[T], seconds: float) -> T:
    """``aw`` within ``seconds`` (TimeoutError after). Not ``asyncio.wait_for``: on Python 3.11
    it loses a cancellation that arrives as the awaited step completes (a drain that finishes as
    the server shuts down), and the connection then waits out its whole idle timeout."""
    async with asyncio.timeout(seconds):
        return await aw


MAX_PENDING = 64 * 1024  # bytes of replies held back to leave together


class _Replies:
    """Replies to frames that arrived together leave in one write (one send, one wake-up of the
    programmer, instead of one per reply): held until the connection's task next waits (the
    flush is a ``call_soon``), or until MAX_PENDING bytes, and always before the connection
    closes. A programmer that sends one frame at a time gets each reply at once."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._parts: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= MAX_PENDING:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        if not self._writer.transport.is_closing():  # closed over a cap: nothing to send to
            self._writer.write(data)


async def _serve_connection(
    endpoint_factory: Callable[[], PumpEndpoint],
    lock: asyncio.Lock,
    gate: ConnectionGate,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    endpoint = endpoint_factory()
    key = id(writer)
    role = endpoint.role
    gate.place(key, writer, role)
    replies = _Replies(writer)
    try:
        while True:
            idle = (endpoint.timeout_s + IDLE_GRACE_S) if endpoint.role else READ_TIMEOUT_S
            try:
                head = await _within(reader.readexactly(HEADER.size), idle)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                total = frame_length(head)
            except FrameError as exc:
                replies.flush()
                with contextlib.suppress(TimeoutError, ConnectionError):
                    writer.write(encode(Frame(MessageType.ERROR, 0, {"code": exc.code,
                                                                     "reason": exc.reason}),
                                        bytes(32)))
                    await _within(writer.drain(), READ_TIMEOUT_S)
                return
            try:
                rest = await _within(reader.readexactly(total - HEADER.size),
                                              READ_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            async with lock:  # one command at a time reaches the pump
                reply = endpoint.handle(head + rest)
            try:
                replies.add(reply)
                if writer.transport.get_write_buffer_size():
                    # Earlier replies not all sent: wait (bounded) for a peer that reads slowly.
                    # Most leave in one write, and then no timer is set up per frame.
                    replies.flush()
                    await _within(writer.drain(), READ_TIMEOUT_S)
            except (TimeoutError, ConnectionError):
                return  # the peer went away (or was closed over a cap): not an error
            if endpoint.role is None and (
                    endpoint.refused_without_session >= MAX_REFUSED_WITHOUT_SESSION):
                return  # out of budget: a programmer with the right key never gets here
            if endpoint.role is not role:
                role = endpoint.role
                gate.place(key, writer, role)
    finally:
        replies.flush()
        gate.remove(key)
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await _within(writer.wait_closed(), 1.0)


async def start_server(
    endpoint_factory: Callable[[], PumpEndpoint], host: str = "127.0.0.1", port: int = 0,
    *, log: BoundedLog | None = None, gate: ConnectionGate | None = None,
) -> asyncio.Server:
    """Serve on loopback; ``port=0`` picks a free port (see ``server.sockets[0]``)."""
    lock = asyncio.Lock()
    log = log or BoundedLog()
    gate = gate or ConnectionGate(*connection_caps())
    loop = asyncio.get_running_loop()
    # asyncio's own reports (an accept that fails, a callback that raises) come with a traceback
    # each; a flood of peers must not turn into a flood of log lines.
    loop.set_exception_handler(lambda _loop, ctx: log(
        f"{ctx.get('message', 'error')}: {type(ctx.get('exception')).__name__}"))

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # Top-level connection task: a shutdown cancels it; end quietly, the socket is closed.
        try:
            await _serve_connection(endpoint_factory, lock, gate, r, w)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # never a traceback per peer
            log(f"connection ended by {type(exc).__name__}")

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
                 port: int = 0, *, gate: ConnectionGate | None = None,
                 log: BoundedLog | None = None) -> None:
        import threading

        self.gate = gate or ConnectionGate(*connection_caps())
        self.log = log or BoundedLog()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            start_server(endpoint_factory, host, port, log=self.log, gate=self.gate))
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
