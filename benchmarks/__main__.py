"""`make bench`: run every benchmarks/bench_*.py module's main() and print its figures.

Each benchmark measures its reference in the same run and prints the ratio, so figures are
comparable across machines. Set OPENITB_BENCH_ONLY=name[,name...] to run only those modules
(exact names, with or without the bench_ prefix: "clinic" runs bench_clinic, not bench_clinic_race).
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
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    only = {n.strip() if n.strip().startswith("bench_") else f"bench_{n.strip()}"
            for n in os.environ.get("OPENITB_BENCH_ONLY", "").split(",") if n.strip()}
    unknown = only - set(names)
    if unknown:
        print(f"OPENITB_BENCH_ONLY: no benchmark named {', '.join(sorted(unknown))}; "
              f"known: {', '.join(n.removeprefix('bench_') for n in names)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        if only and name not in only:
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
