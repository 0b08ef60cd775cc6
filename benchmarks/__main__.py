"""`make bench`: run every benchmarks/bench_*.py module's main() and print its figures.

Each benchmark measures its reference in the same run and prints the ratio, so figures are
comparable across machines. Set OPENITB_BENCH_ONLY=name to run one module.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    sys.path.insert(0, str(here.parent))
    only = os.environ.get("OPENITB_BENCH_ONLY")
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    failed = 0
    for name in names:
        if only and only not in name:
            continue
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rc = module.main()
        print(f"--- {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        failed += 1 if rc else 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
