"""Crash test: a pump process on file memory is killed at random points during programming and
refill; every restart must find a consistent state (never between two commands)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from openitb.pump.controller import PumpController

WORKER = r"""
import sys
from datetime import timedelta
from pathlib import Path
from openitb.devices import get_pump
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.pump.memory import FileMemory
from openitb.therapy.prescription import Continuous
from openitb.units import McgPerDay, McgPerMl, Milliliters
from tests.unit.pump.helpers import T0
mem = FileMemory(Path(sys.argv[1]), every=7)  # snapshots often: kills land inside them too
if mem.blank:
    p = PumpController(get_pump("itb-40"), T0, true_stroke_nl=1050, memory=mem)
    p.checkpoint()
else:
    p = PumpController.restore(mem, "itb-40")
print("ready", flush=True)
i = 0
while True:
    i += 1
    p.advance(p.now + timedelta(hours=7))
    p.handle(cmd.Refill(Milliliters(10 + i % 30), McgPerMl(1000)))
    p.handle(cmd.Program(Continuous(McgPerDay(200 + i % 500)), McgPerMl(1000)))
    p.handle(cmd.Start())
"""


def _consistent(p: PumpController) -> None:
    assert p.alarms.active("memory_error") is None
    assert p.filled_nl - p.withdrawn_nl == p.reservoir_true_nl + p.delivered_nl + p.tissue_nl
    assert p.log.verify()[0]


def test_killed_at_random_points_restarts_consistent(tmp_path: Path) -> None:
    from openitb.pump.memory import FileMemory

    rng = np.random.default_rng(5)
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    last = -1
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], env=env,
                                stdout=subprocess.PIPE, cwd=root)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recovery = FileMemory(tmp_path).recover()
        assert recovery.damage == []
        p = PumpController.replayed(recovery, "itb-40")
        _consistent(p)
        assert p.t >= last  # time and delivery never go backwards
        last = p.t
