"""Telemetry: fuzzing throughput and robustness, and loopback round-trip times.

Prints: frames fuzzed (random and mutated), errors answered, state changes (must be 0);
median and 99th-percentile round trip of a command over loopback TCP; commands per second.
The reference in the same run is the in-process transport (no socket), so the ratio shows the
cost of the socket.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.frames import Frame, MessageType, encode, split
from openitb.telemetry.fuzz import mutated
from openitb.telemetry.session import PumpEndpoint, Role
from openitb.telemetry.tcp import ServerThread, TcpTransport

CLIN, PAT = os.urandom(32), os.urandom(32)


def _endpoint(calls: list[str]) -> PumpEndpoint:
    def dispatch(role: Role, name: str, args: dict[str, Any]) -> dict[str, Any]:
        calls.append(name)
        return {"state": "running", "reservoir_ml": 12.5}

    return PumpEndpoint({Role.CLINICIAN: CLIN, Role.PATIENT: PAT}, dispatch, time.monotonic)


def fuzz(n: int, seed: int = 1) -> tuple[int, int, int]:
    rng = random.Random(seed)
    calls: list[str] = []
    ep = _endpoint(calls)
    client = ProgrammerClient(ep.handle, Role.CLINICIAN, CLIN)
    client.open()
    key = client._key
    assert key is not None
    good = [encode(Frame(MessageType.COMMAND, 10_000 + i, {"command": "stop", "args": {"i": i}}),
                   key) for i in range(64)]
    errors = 0
    for i in range(n):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 120))
        else:
            data = mutated(rng.choice(good), rng, 4)
        reply = ep.handle(data)
        if split(reply).type is MessageType.ERROR:
            errors += 1
    return n, errors, len(calls)


def round_trips(transport: Any, n: int) -> list[float]:
    client = ProgrammerClient(transport, Role.CLINICIAN, CLIN)
    client.open()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.command("read_status")
        out.append(time.perf_counter() - t0)
    client.close()
    return out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> int:
    n = int(os.environ.get("OPENITB_FUZZ_FRAMES", "100000"))
    t0 = time.perf_counter()
    total, errors, changes = fuzz(n)
    dt = time.perf_counter() - t0
    print(f"fuzz: {total} frames (half random, half mutated valid) in {dt:.1f} s "
          f"({total / dt:,.0f} frames/s); error replies {errors}; commands reaching the pump "
          f"{changes} (must be 0)")
    calls: list[str] = []
    inproc = round_trips(_endpoint(calls).handle, 2000)
    with ServerThread(lambda: _endpoint(calls)) as server:
        t = TcpTransport("127.0.0.1", server.port)
        tcp = round_trips(t, 2000)
        t.close()
    med_in, med_tcp = statistics.median(inproc), statistics.median(tcp)
    print(f"read_status round trip, in-process: median {med_in * 1e6:.0f} us, "
          f"p99 {_pct(inproc, 0.99) * 1e6:.0f} us")
    print(f"read_status round trip, loopback TCP: median {med_tcp * 1e6:.0f} us, "
          f"p99 {_pct(tcp, 0.99) * 1e6:.0f} us; ratio to in-process {med_tcp / med_in:.1f}x; "
          f"sustained {len(tcp) / sum(tcp):,.0f} commands/s")
    return 0 if changes == 0 else 1
