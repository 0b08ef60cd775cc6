"""Clinic web application at scale: seed 10,000 patients and 500,000 visits, serve the clinic
with uvicorn on loopback (one worker, then two), on SQLite and on PostgreSQL, and measure.

Prints, per configuration: median and 99th-percentile latency of /healthz, the dashboard (GET /),
the patient page (GET /patients/{id}) and its JSON; sustained requests per second with 8
concurrent keep-alive clients (90 % patient pages, 10 % dashboard), errors (must be 0) and the
server's CPU time per request. Reference in the same run: a bare FastAPI application with the
same routes (benchmarks/_bare_app.py) under the same uvicorn, measured with the same client.
Every target of issue 15 is printed with "met" or "MISSED". PostgreSQL: a fresh database on
OPENITB_TEST_POSTGRES, else a throwaway server (benchmarks/pgserver.py), else "not available".
Scale with OPENITB_BENCH_PATIENTS, OPENITB_BENCH_VISITS, OPENITB_BENCH_SECONDS (sustained phase,
10), OPENITB_BENCH_CLIENTS (8); OPENITB_BENCH_PG=0 skips PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from benchmarks import httpload as hl
from openitb.clinic.accounts import hash_password
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM
from openitb.store.db import make_engine
from openitb.store.models import Alarm, Patient, Program, Pump, Refill, User, Visit

NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
PASSWORD = "bench-password"


def seed(url: str, patients: int, visits: int, rng: random.Random) -> None:
    clinic = Clinic(make_engine(url))
    per = max(1, visits // patients)
    with clinic.engine.begin() as conn:
        conn.execute(insert(User), [{"username": "nurse.bench", "display_name": "Bench nurse",
                                     "role": "nurse", "password_hash": hash_password(PASSWORD),
                                     "patient_id": None, "active": True, "created_at": NOW}])
        conn.execute(insert(Patient), [{
            "id": i, "mrn": f"B-{i:06d}", "name": f"Patient {i:06d}",
            "birth_date": date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            "origin": "spinal" if i % 3 else "cerebral", "population": "spinal" if i % 3 else "cerebral",
            "diagnosis": "", "weight_kg": 50 + i % 50, "injury_level": "", "risk_high_injury": i % 7 == 0,
            "risk_communication": False, "risk_prior_withdrawal": False, "stage": "implanted",
            "checklist": {}, "emergency_contact": "", "created_at": NOW - timedelta(days=800),
            "version": 1} for i in range(1, patients + 1)])
        conn.execute(insert(Pump), [{
            "id": i, "patient_id": i, "profile": "itb-20", "serial": f"BS-{i:06d}",
            "catheter": "itb-cath-110", "catheter_length_cm": 90.0, "tip_level": "T10",
            "implanted_at": NOW - timedelta(days=700), "active": True,
            "state": {"filled_nl": 20_000_000 * 10},
            "concentration": 500.0, "dose_per_day": 300.0, "reservoir_ml": rng.uniform(2, 20),
            "refill_by": NOW + timedelta(days=rng.uniform(-10, 110)),
            "low_alarm_at": NOW + timedelta(days=rng.uniform(0, 115)),
            "empty_at": NOW + timedelta(days=rng.uniform(5, 120)),
            "eri_at": NOW + timedelta(days=rng.uniform(30, 2000)), "synced_at": NOW}
            for i in range(1, patients + 1)])
        conn.execute(insert(Program), [{
            "patient_id": i, "pump_id": i, "at": NOW - timedelta(days=700),
            "prescription": {"mode": "continuous", "dose": "300 mcg/day"}, "concentration": 500.0,
            "dose_per_day": 300.0, "classification": "within", "reason": "", "by_user": "bench"}
            for i in range(1, patients + 1)])
        conn.execute(insert(Refill), [{
            "patient_id": i, "pump_id": i, "at": NOW - timedelta(days=30 * k + 20),
            "expected_ml": 2.5, "withdrawn_ml": 2.4, "discrepancy_ml": -0.1, "flagged": False,
            "volume_ml": 20.0, "old_concentration": 500.0, "concentration": 500.0,
            "by_user": "bench", "note": ""} for i in range(1, patients + 1) for k in range(3)])
        conn.execute(insert(Alarm), [{
            "patient_id": i, "pump_id": i, "kind": "low_reservoir", "critical": False,
            "raised_at": NOW - timedelta(hours=i % 48), "reason": ""}
            for i in range(1, patients + 1, 50)])
        batch: list[dict[str, object]] = []
        for i in range(1, patients + 1):
            for k in range(per):
                batch.append({"patient_id": i, "at": NOW - timedelta(days=k * 14, hours=i % 24),
                              "kind": "refill" if k % 2 else "visit",
                              "summary": f"routine visit {k}", "by_user": "bench"})
            if len(batch) >= 50_000:
                conn.execute(insert(Visit), batch)
                batch = []
        if batch:
            conn.execute(insert(Visit), batch)
    with clinic.uow(SYSTEM, NOW) as u:
        set_demo_clock(u.session, NOW)
    clinic.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_in_client(base: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60)
    token = c.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = c.post("/api/v1/auth/login", json={"username": "nurse.bench", "password": PASSWORD},
               headers={"X-CSRF-Token": token})
    r.raise_for_status()
    return c


def signed_in_cookie(base: str) -> str:
    from openitb.web.security import COOKIE

    c = signed_in_client(base)
    try:
        return f"{COOKIE}={c.cookies[COOKIE]}"
    finally:
        c.close()


@contextlib.contextmanager
def served(target: list[str], env: dict[str, str], workers: int) -> Iterator[tuple[int, int]]:
    """(port, pid) of uvicorn serving ``target`` with ``workers`` processes, as `itb serve` does
    (TCP_NODELAY protocol)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--workers", str(workers),
         "--http", "openitb.web.serving:NoDelayH11Protocol"],
        env=env, cwd=str(Path(__file__).resolve().parents[1]))
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        if workers > 1:
            time.sleep(1.5)  # every worker up (each answers /healthz as it comes)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=20)


@dataclass
class Figures:
    label: str
    medians_ms: dict[str, float]
    p99s_ms: dict[str, float]
    load: hl.Sustained
    dashboard_items: int


ROUTES = ("healthz", "dashboard", "patient page", "patient JSON")


def measure(label: str, port: int, pid: int, cookie: str, patients: int, seconds: float,
            clients: int, bare: bool = False) -> Figures:
    rng = random.Random(11)
    c = hl.KeepAlive(port, cookie)
    ids = [rng.randint(1, patients) for _ in range(200)]
    hl.latencies(c, ["/", f"/patients/{ids[0]}", "/healthz"] * 5)  # warm up
    runs = {"healthz": hl.latencies(c, ["/healthz"] * 300),
            "dashboard": hl.latencies(c, ["/"] * 100),
            "patient page": hl.latencies(c, [f"/patients/{i}" for i in ids])}
    if not bare:
        runs["patient JSON"] = hl.latencies(c, [f"/api/v1/patients/{i}" for i in ids[:100]])
    items = 0
    if not bare:
        status, body = c.get("/api/v1/dashboard")
        items = len(json.loads(body)) if status == 200 else -1
    c.close()
    load = hl.sustained(port, cookie, seconds, clients, patients, pid)
    return Figures(label, {k: 1000 * statistics.median(v) for k, v in runs.items()},
                   {k: 1000 * hl.pct(v, 0.99) for k, v in runs.items()}, load, items)


def report(f: Figures, ref: Figures | None) -> None:
    print(f"{f.label}" + (f" (dashboard: {f.dashboard_items} items)" if f.dashboard_items else ""))
    for name in ROUTES:
        if name not in f.medians_ms:
            continue
        ratio = ""
        if ref is not None and name in ref.medians_ms:
            ratio = f"  x{f.medians_ms[name] / ref.medians_ms[name]:.1f} the bare route"
        print(f"  {name:14s} median {f.medians_ms[name]:7.2f} ms  p99 {f.p99s_ms[name]:7.2f} ms"
              f"{ratio}")
    ld = f.load
    ratio = f"; {ld.rps / ref.load.rps:.2f} of the bare app's" if ref is not None else ""
    print(f"  sustained {ld.rps:6.0f} requests/s, {ld.errors} errors, {ld.requests} requests in "
          f"{ld.seconds:.1f} s; server CPU {ld.cpu_ms_per_request:.2f} ms per request{ratio}")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def clinic_runs(db: str, url: str, patients: int, seconds: float, clients: int,
                ref: Figures) -> dict[int, Figures]:
    env = {**os.environ, "OPENITB_DATABASE_URL": url, "OPENITB_DEMO": "1"}
    out: dict[int, Figures] = {}
    for workers in (1, 2):
        with served(["--factory", "openitb.web.app:app_from_env"], env, workers) as (port, pid):
            cookie = signed_in_cookie(f"http://127.0.0.1:{port}")
            out[workers] = measure(f"{db}, {workers} worker{'s' if workers > 1 else ''} "
                                   f"(load {load_avg()})", port, pid, cookie, patients,
                                   seconds, clients)
        report(out[workers], ref)
    return out


def targets(db: str, runs: dict[int, Figures], ref: Figures) -> list[bool]:
    one, two = runs[1], runs[2]
    best = max(runs.values(), key=lambda f: f.load.rps)
    checks = [
        (f"{db}: >= 300 requests/s sustained with 0 errors ({best.load.rps:.0f}/s, "
         f"{best.load.errors} errors, {best.label.split(' (')[0]})",
         best.load.rps >= 300 and all(f.load.errors == 0 for f in runs.values())),
        (f"{db}: dashboard p99 < 50 ms ({one.p99s_ms['dashboard']:.1f} ms)",
         one.p99s_ms["dashboard"] < 50),
        (f"{db}: patient page p99 < 50 ms ({one.p99s_ms['patient page']:.1f} ms)",
         one.p99s_ms["patient page"] < 50),
        (f"{db}: /healthz median < 1 ms ({one.medians_ms['healthz']:.2f} ms; the bare route "
         f"{ref.medians_ms['healthz']:.2f} ms)", one.medians_ms["healthz"] < 1.0),
        (f"{db}: two workers faster than one ({two.load.rps:.0f}/s against "
         f"{one.load.rps:.0f}/s, x{two.load.rps / one.load.rps:.2f})",
         two.load.rps > one.load.rps),
    ]
    for text, ok in checks:
        print(f"target {verdict(ok):6s} {text}")
    return [ok for _, ok in checks]


def main() -> int:
    from benchmarks import pgserver

    patients = int(os.environ.get("OPENITB_BENCH_PATIENTS", "10000"))
    visits = int(os.environ.get("OPENITB_BENCH_VISITS", "500000"))
    seconds = float(os.environ.get("OPENITB_BENCH_SECONDS", "10"))
    clients = int(os.environ.get("OPENITB_BENCH_CLIENTS", "8"))
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    print(f"load average at start: {load_avg()} on {os.cpu_count()} cores")
    with served(["benchmarks._bare_app:app"], dict(os.environ), 1) as (port, pid):
        ref = measure(f"reference: bare FastAPI app, 1 worker (load {load_avg()})", port, pid,
                      "", patients, seconds, clients, bare=True)
    report(ref, None)
    db = out / "clinic-bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    seed(url, patients, visits, random.Random(7))
    print(f"SQLite: seeded {patients} patients, {visits} visits, {3 * patients} refills in "
          f"{time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
    oks = targets("SQLite", clinic_runs("SQLite", url, patients, seconds, clients, ref), ref)
    if os.environ.get("OPENITB_BENCH_PG", "1") == "0":
        print("PostgreSQL: not available (OPENITB_BENCH_PG=0)")
    else:
        with pgserver.database() as (pg_url, where):
            if pg_url is None:
                print(f"PostgreSQL: not available ({where})")
            else:
                t0 = time.perf_counter()
                seed(pg_url, patients, visits, random.Random(7))
                print(f"PostgreSQL ({where}): seeded in {time.perf_counter() - t0:.1f} s")
                pg = clinic_runs("PostgreSQL", pg_url, patients, seconds, clients, ref)
                oks += targets("PostgreSQL", pg, ref)
    print(f"load average at end: {load_avg()}")
    return 0 if all(oks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
