"""Racing clients against the served clinic (issue 13): every write endpoint of the API, 20
clients at the same moment (OPENITB_BENCH_RACE_CLIENTS), over real HTTP on loopback, on SQLite
and, when OPENITB_TEST_POSTGRES names a server that may be wiped, on PostgreSQL.

Prints per endpoint the answers (e.g. 201 x 3, 409 x 17), the accepted changes, their audit
rows and the refusal rows of the 409s; then whether the audit chain verifies. Must be: 0 5xx,
accepted == audited, 409s == refusal rows, no lost update (tests/integration/clinic/racing.py
checks the records). Reference in the same run: the same endpoints with one client (no race).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from tests.integration.clinic.racing import race

from openitb.clinic.demo import seed_demo
from openitb.clinic.facade import Clinic
from openitb.store import audit
from openitb.store.db import make_engine


def _clinic(url: str) -> Clinic:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    clinic = Clinic(engine)
    seed_demo(clinic)
    return clinic


def run(label: str, url: str, clients: int) -> int:
    failures = 0
    timings = {}
    for n in (1, clients):
        clinic = _clinic(url.replace(".db", f"-{n}.db") if url.startswith("sqlite") else url)
        t0 = time.perf_counter()
        outcomes = race(clinic, n, tag=f"n{n}")
        timings[n] = time.perf_counter() - t0
        with clinic.factory() as s:
            verdict = audit.verify(s)
        clinic.engine.dispose()
        if n == 1:
            continue
        print(f"{label}: {clients} racing clients per endpoint")
        print(f"  {'endpoint':28} {'answers':28} accepted audited 409s refusal-rows")
        for o in outcomes:
            answers = ", ".join(f"{k} x {v}" for k, v in sorted(o.statuses.items()))
            print(f"  {o.name:28} {answers:28} {o.accepted:8} {o.audited_ok:7} "
                  f"{o.conflicts:4} {o.audited_conflicts:12}")
            for f in o.failures:
                print(f"  FAIL {f}")
                failures += 1
        total = sum(sum(o.statuses.values()) for o in outcomes)
        five = sum(v for o in outcomes for k, v in o.statuses.items() if k >= 500)
        print(f"  requests {total}, 5xx {five}, accepted {sum(o.accepted for o in outcomes)}, "
              f"409 {sum(o.conflicts for o in outcomes)}; audit chain "
              f"{'intact' if verdict.ok else 'BROKEN: ' + verdict.reason} ({verdict.rows} rows)")
        failures += 0 if verdict.ok else 1
    print(f"  time: {timings[clients]:.1f} s with {clients} clients vs {timings[1]:.1f} s with one "
          f"(reference), ratio {timings[clients] / timings[1]:.2f}")
    return failures


def main() -> int:
    clients = int(os.environ.get("OPENITB_BENCH_RACE_CLIENTS", "20"))
    with tempfile.TemporaryDirectory() as d:
        failures = run("SQLite", f"sqlite:///{Path(d) / 'race.db'}", clients)
    pg = os.environ.get("OPENITB_TEST_POSTGRES")
    if pg:
        failures += run("PostgreSQL", pg, clients)
    else:
        print("PostgreSQL: skipped (set OPENITB_TEST_POSTGRES=postgresql://... to run)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
