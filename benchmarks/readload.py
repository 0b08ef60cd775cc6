"""Sustained read_status against a served pump: the load, and where the time goes.

The pump is served by the code of `itb pump serve` (``open_service`` + ``serve_forever``: the TCP
server, file memory with its journal) in a forked process of its own; the in-RAM pump beside it
is the same serving code over a controller whose memory is ``InMemory``. The load comes from
other processes (the programmer's side costs CPU too: on a machine of two cores, one client in
the server's process measures the client), each with its own authenticated clinician session,
``DEPTH`` requests in flight: every reply is verified (session MAC, request sequence, pump
sequence, bounded decode) by ``ProgrammerClient`` exactly as for one command at a time.

Reported for each pump: replies/s at the clients, read_status/s counted by the served pump itself
between its first and last read, and its CPU time per read_status (process time of the serving
process over the same span: what the load of the machine changes least).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import InMemory
from openitb.pumpservice import store
from openitb.pumpservice.clock import VirtualClock
from openitb.pumpservice.runner import open_service, serve_forever
from openitb.pumpservice.service import PumpService
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.frames import HEADER, Frame, MessageType, encode, frame_length
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import TcpTransport

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DEPTH = 8  # requests in flight per session


@dataclass
class Served:
    kind: str  # "file memory" | "in RAM"
    pid: int
    port: int
    keys: dict[Role, bytes]
    report_fd: int


GAP_S = 0.5  # a pause longer than this between two reads ends a busy span


def _count_reads(service: PumpService) -> Callable[[], dict[str, float]]:
    """Wrap dispatch: count read_status, and sum the wall time of the spans in which reads
    arrive (a pause of more than GAP_S, while the other pump is driven, is left out). Cheap:
    one perf_counter a read (the process time is read by the parent, from /proc)."""
    stats = {"n": 0.0, "busy_s": 0.0}
    span: list[float] = []  # [start, last]
    inner = service.dispatch

    def counting(role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = inner(role, name, args)
        if name == "read_status":
            now = time.perf_counter()
            if span and now - span[1] > GAP_S:
                stats["busy_s"] += span[1] - span[0]
                span.clear()
            if not span:
                span.extend((now, now))
            span[1] = now
            stats["n"] += 1
        return out

    def close() -> dict[str, float]:
        if span:
            stats["busy_s"] += span[1] - span[0]
        return stats

    service.dispatch = counting
    return close


def cpu_s(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(kind: str, directory: Path) -> Served:
    """Fork the served pump; it reports its read counts on SIGTERM (a clean shutdown)."""
    from openitb.units import Milliliters, parse

    parse("1 mL", Milliliters, "warm-up")
    if kind == "file memory":
        _ident, keys = store.create(directory, "itb-20", "BENCH-R", T0)
    else:
        keys = {Role.CLINICIAN: os.urandom(32), Role.PATIENT: os.urandom(32)}
    ready_r, ready_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the served pump
        code = 0
        try:
            os.close(ready_r)
            os.close(rep_r)
            if kind == "file memory":
                service, _ = open_service(directory, "virtual", 1.0)
            else:
                service = PumpService(zero_error_pump("itb-20", T0, memory=InMemory()),
                                      VirtualClock(T0), serial="BENCH-R")
            close = _count_reads(service)
            profile = os.environ.get("OPENITB_PROFILE_SERVED")  # a cProfile of the served pump
            prof = None
            if profile:
                import cProfile
                prof = cProfile.Profile()
                prof.enable()
            serve_forever(service, keys, "127.0.0.1", 0,
                          lambda port: os.write(ready_w, f"{port}\n".encode()))
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"{profile}.{kind.replace(' ', '_')}")
            stats = close()
            os.write(rep_w, (" ".join(f"{k}={v!r}" for k, v in stats.items()) + "\n").encode())
        except BaseException as exc:  # noqa: BLE001 - report, never return to the parent
            os.write(ready_w, f"error {exc}\n".encode())
            code = 1
        os._exit(code)
    os.close(ready_w)
    os.close(rep_w)
    with os.fdopen(ready_r, "rb") as f:
        line = f.readline().decode().strip()
    if not line or line.startswith("error"):
        os.waitpid(pid, 0)
        raise RuntimeError(f"served pump did not start: {line}")
    return Served(kind, pid, int(line), keys, rep_r)


def stop(s: Served) -> dict[str, float]:
    os.kill(s.pid, signal.SIGTERM)
    with os.fdopen(s.report_fd, "rb") as f:
        line = f.readline().decode().strip()
    os.waitpid(s.pid, 0)
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def prepare(s: Served, changes: int = 60) -> None:
    """A pump in use: filled, programmed, running, with a full 24 h history of changes."""
    t = TcpTransport("127.0.0.1", s.port)
    c = ProgrammerClient(t, Role.CLINICIAN, s.keys[Role.CLINICIAN])
    c.open()
    c.command("refill", volume="20 mL", concentration="500 mcg/mL")
    for i in range(changes):
        c.command("program", prescription={"mode": "continuous",
                                           "dose": f"{400 + 10 * (i % 2)} mcg/day"},
                  concentration="500 mcg/mL")
        if i == 0:
            c.command("start")
            c.command("clinician_bolus", dose="20 mcg", duration="1 h")
    c.close()
    t.close()


class _Pipelined:
    """One authenticated session sending ``depth`` read_status at a time."""

    def __init__(self, port: int, key: bytes, depth: int) -> None:
        self.transport = TcpTransport("127.0.0.1", port)
        self.client = ProgrammerClient(self.transport, Role.CLINICIAN, key)
        self.client.open()
        self.depth = depth
        self.sock: socket.socket = self.transport._sock

    def burst(self) -> int:
        c = self.client
        assert c._key is not None
        seqs, frames = [], []
        for _ in range(self.depth):
            c._seq += 1
            seqs.append(c._seq)
            frames.append(encode(Frame(MessageType.COMMAND, c._seq,
                                       {"command": "read_status", "args": {}}), c._key))
        self.sock.sendall(b"".join(frames))
        for seq in seqs:
            head = self.transport._read(HEADER.size)
            reply = c._answer(head + self.transport._read(frame_length(head) - HEADER.size), seq)
            if reply.type is not MessageType.RESPONSE or reply.payload.get("ok") is not True:
                raise RuntimeError(f"read_status refused: {reply.payload}")
            assert "history_24h" in reply.payload["result"]
        return self.depth


def _client(port: int, key: bytes, depth: int, seconds: float, q: Any) -> None:
    p = _Pipelined(port, key, depth)
    n = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while time.perf_counter() - t0 < seconds:
        n += p.burst()
    q.put((n, time.perf_counter() - t0, time.process_time() - cpu0))
    p.client.close()
    p.transport.close()


@dataclass
class Load:
    replies: int
    client_rate: float  # replies/s summed over the clients
    server_rate: float  # read_status/s counted by the served pump
    server_us: float  # server CPU per read_status
    client_us: float  # client CPU per reply


def drive(s: Served, clients: int, seconds: float, depth: int = DEPTH
          ) -> tuple[int, float, float, float]:
    """(replies, replies/s summed over the clients, client CPU per reply, server CPU s)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(s.port, s.keys[Role.CLINICIAN], depth, seconds, q))
             for _ in range(clients)]
    cpu0 = cpu_s(s.pid)
    for p in procs:
        p.start()
    out = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    n = sum(x[0] for x in out)
    return (n, sum(x[0] / x[1] for x in out), sum(x[2] for x in out) / max(1, n),
            cpu_s(s.pid) - cpu0)


def measure(clients: int = 2, seconds: float = 3.0, rounds: int = 2) -> dict[str, Load]:
    """Both pumps served at once, driven in turn, round by round (the same machine load)."""
    with tempfile.TemporaryDirectory() as tmp:
        served = [serve("file memory", Path(tmp) / "pump"), serve("in RAM", Path(tmp) / "ram")]
        totals: dict[str, list[float]] = {s.kind: [0.0, 0.0, 0.0, 0.0] for s in served}
        try:
            for s in served:
                prepare(s)
            for _ in range(rounds):
                for s in served:
                    n, rate, cpu, server_cpu = drive(s, clients, seconds)
                    t = totals[s.kind]
                    t[0] += n
                    t[1] += rate / rounds
                    t[2] += cpu * n
                    t[3] += server_cpu
        finally:
            stats = {s.kind: stop(s) for s in served}
    out = {}
    for kind, (count, rate_sum, client_cpu, served_cpu) in totals.items():
        st = stats[kind]
        out[kind] = Load(int(count), rate_sum,
                         st["n"] / st["busy_s"] if st["busy_s"] > 0 else 0.0,
                         served_cpu / max(1.0, count) * 1e6, client_cpu / max(1.0, count) * 1e6)
    return out
