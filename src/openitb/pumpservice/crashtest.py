"""Kill a served pump again and again during program, refill and bolus traffic; check each
restart. One driver for the crash test in the tests (a real `itb pump serve` process) and the
thousand-kill benchmark (the same serve code in a forked child, which starts in milliseconds).

After each SIGKILL the memory directory is read without writing (``recover`` + ``replayed``, as
`itb pump serve` would) and must prove a consistent state:
- loadable without damage (no memory alarm);
- volumes conserved to the nanolitre (filled - withdrawn = reservoir + delivered + tissue);
- the event log's hash chain intact and its sequence continuing from the last restart;
- the commands logged since the last restart are exactly the acknowledged writes, in order,
  plus at most the one in flight when the pump died: none lost, none applied twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from openitb.pump.controller import PumpController
from openitb.pump.memory import FileMemory
from openitb.pumpservice import store
from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import TcpTransport

CONC = "500 mcg/mL"
LOGGED = {"program": "command_Program", "refill": "command_Refill", "start": "command_Start",
          "stop": "command_Stop", "clinician_bolus": "command_ClinicianBolus"}


@dataclass
class Server:
    pid: int
    port: int
    wait: Callable[[], None]


def spawn_cli(state: Path, speed: float = 3600.0) -> Server:
    """`itb pump serve` as its own process (what a user runs)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "openitb.cli", "pump", "serve", "--state", str(state), "--port",
         "0", "--clock", "virtual", "--speed", str(speed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"itb pump serve did not start: {proc.stderr.read() if proc.stderr else ''}")
    return Server(proc.pid, json.loads(line)["port"], lambda: _reap(proc))


def _reap(proc: subprocess.Popen[str]) -> None:
    proc.wait()
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def spawn_fork(state: Path, speed: float = 3600.0) -> Server:
    """The serve code of `itb pump serve` (open_service + serve_forever) in a forked child: no
    interpreter start-up, so a thousand kills fit in minutes. The parent must have no threads."""
    from openitb.pumpservice.runner import open_service, serve_forever
    from openitb.units import Milliliters, parse

    parse("1 mL", Milliliters, "warm-up")  # load the unit registry once, before forking
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            service, keys = open_service(state, "virtual", speed)

            def ready(port: int) -> None:
                os.write(w, f"{port}\n".encode())

            serve_forever(service, keys, "127.0.0.1", 0, ready)
        except BaseException as exc:  # noqa: BLE001 - report and leave, never return to the parent
            os.write(w, f"error {exc}\n".encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        line = f.readline().decode().strip()
    if not line or line.startswith("error"):
        os.waitpid(pid, 0)
        raise RuntimeError(f"served pump did not start: {line}")
    return Server(pid, int(line), lambda: os.waitpid(pid, 0) and None)


@dataclass
class Cycle:
    acked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    in_flight: tuple[str, dict[str, Any]] | None = None
    commands: int = 0


def traffic(port: int, key: bytes, rng: np.random.Generator, stop: threading.Event,
            started: threading.Event) -> Cycle:
    """Program, refill and bolus traffic (with reads between) until the pump dies."""
    cycle = Cycle()
    try:
        client = ProgrammerClient(TcpTransport("127.0.0.1", port, timeout_s=5), Role.CLINICIAN,
                                  key)
        client.open()
        while not stop.is_set():
            status = client.command("read_status")
            pick = rng.random()
            args: dict[str, Any]
            if status["reservoir_estimate_ml"] < 2 or pick < 0.2:
                name, args = "refill", {"volume": f"{int(rng.integers(5, 21))} mL",
                                        "concentration": CONC}
            elif status["program"] is None or pick < 0.45:
                name, args = "program", {"prescription": {"mode": "continuous", "dose":
                                         f"{int(rng.integers(50, 400))} mcg/day"},
                                         "concentration": CONC}
            elif not status["running"]:
                name, args = "start", {}
            elif status["bolus_running_until"] is None and pick < 0.75:
                name, args = "clinician_bolus", {"dose": f"{int(rng.integers(10, 60))} mcg",
                                                 "duration": "1 h"}
            elif pick < 0.8:
                name, args = "stop", {}
            else:
                continue
            cycle.in_flight = (name, args)
            try:
                client.command(name, **args)
                cycle.acked.append((name, args))
                started.set()  # the kill comes after traffic is flowing
            except TelemetryError:
                pass  # refused: changes nothing and is not logged
            cycle.in_flight = None
            cycle.commands += 2
    except (OSError, ConnectionError, TelemetryError, ValueError):
        pass  # the pump was killed
    finally:
        started.set()
    return cycle


@dataclass
class Report:
    kills: int = 0
    inconsistent: list[str] = field(default_factory=list)
    acked_writes: int = 0
    in_flight_applied: int = 0
    commands: int = 0
    seconds: float = 0.0
    replayed_records: int = 0

    @property
    def kills_per_s(self) -> float:
        return self.kills / self.seconds if self.seconds else 0.0


def check(state: Path, profile: str, since_seq: int, last_t: int, cycle: Cycle
          ) -> tuple[PumpController | None, list[str], bool, int]:
    """Recover without writing and check the invariants; (pump, problems, in-flight applied)."""
    recovery = FileMemory(state / "memory").recover()
    pump = PumpController.replayed(recovery, profile)
    problems = list(recovery.damage)
    if pump.alarms.active("memory_error") is not None:
        problems.append("memory alarm active")
    if pump.filled_nl - pump.withdrawn_nl != (pump.reservoir_true_nl + pump.delivered_nl
                                              + pump.tissue_nl):
        problems.append("volumes not conserved")
    ok, why = pump.log.verify()
    if not ok:
        problems.append(f"log chain: {why}")
    if pump.t < last_t:
        problems.append("time went backwards")
    logged = [e["kind"] for e in pump.log.entries
              if e["seq"] >= since_seq and e["kind"].startswith("command_") and e["data"]["ok"]]
    expected = [LOGGED[n] for n, _ in cycle.acked]
    extra = False
    if logged != expected:
        if (cycle.in_flight is not None and logged == expected + [LOGGED[cycle.in_flight[0]]]):
            extra = True
        else:
            problems.append(f"logged {logged[-5:]} != acknowledged {expected[-5:]} "
                            f"(in flight {cycle.in_flight})")
    return pump, problems, extra, len(recovery.records)


def run(state: Path, kills: int, spawn: Callable[[Path], Server], seed: int = 1,
        min_s: float = 0.02, max_s: float = 0.25,
        progress: Callable[[Report], None] | None = None) -> Report:
    """``kills`` cycles of serve, traffic, SIGKILL at a random moment, check; ``progress`` is
    called every 100 kills."""
    rng = np.random.default_rng(seed)
    ident = store.load_identity(state)
    key = store.load_keys(state)[Role.CLINICIAN]
    report = Report()
    first = PumpController.replayed(FileMemory(state / "memory").recover(), ident.profile)
    since, last_t = first.log.next_seq, first.t
    t0 = time.perf_counter()
    for i in range(kills):
        server = spawn(state)
        stop, started = threading.Event(), threading.Event()
        out: list[Cycle] = []
        delay = float(rng.uniform(min_s, max_s))
        worker = threading.Thread(target=lambda o=out, a=(
            server.port, key, np.random.default_rng(seed * 100_003 + i), stop, started):
            o.append(traffic(*a)))
        worker.start()
        started.wait(30)
        time.sleep(delay)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        worker.join()
        cycle = out[0]
        pump, problems, extra, replayed = check(state, ident.profile, since, last_t, cycle)
        report.kills += 1
        report.acked_writes += len(cycle.acked)
        report.in_flight_applied += extra
        report.commands += cycle.commands
        report.replayed_records += replayed
        if problems:
            report.inconsistent.append(f"kill {i + 1}: " + "; ".join(problems))
        if pump is not None:
            since, last_t = pump.log.next_seq, pump.t
        report.seconds = time.perf_counter() - t0
        if progress is not None and report.kills % 100 == 0:
            progress(report)
    return report


def new_pump(state: Path, now: datetime, seed: int = 7) -> None:
    store.create(state, "itb-40", "CRASH-1", now, seed)
