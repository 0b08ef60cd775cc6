"""CLI start-up: `itb calc rate` wall time against `python -c pass` in the same run.

Both are run as fresh processes, interleaved, several times; the medians are compared. Target:
`itb calc rate` within 0.3 s of `python -c pass`. Also printed, to show what is left: the floor
of the CLI framework alone (`import typer` plus the pydantic it uses to coerce parameters).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = int(os.environ.get("OPENITB_BENCH_CLI_RUNS", "7"))
TARGET_S = 0.3
ITB = [str(Path(sys.executable).with_name("itb")), "calc", "rate",
       "--dose", "400 mcg/day", "--concentration", "500 mcg/mL"]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "framework floor (typer+pydantic)": [sys.executable, "-c", "import typer._adapters"],
    "itb calc rate": ITB,
    "itb --help": [ITB[0], "--help"],
}


def _wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():  # warm the file cache once
        _wall(argv)
    for _ in range(RUNS):
        for name, argv in CASES.items():
            times[name].append(_wall(argv))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    base = med["python -c pass"]
    for name, m in med.items():
        print(f"{name:>34}: median {m * 1000:7.1f} ms over {RUNS} runs "
              f"(+{(m - base) * 1000:6.1f} ms over python -c pass)")
    over = med["itb calc rate"] - base
    ok = over <= TARGET_S
    print(f"itb calc rate - python -c pass = {over:.3f} s (target <= {TARGET_S} s): "
          f"{'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
