"""Clinic web application at scale: seed 10,000 patients and 500,000 visits in SQLite, serve it
with uvicorn on loopback, and measure the dashboard and the patient page.

Prints: seeding time; median and 99th-percentile latency of the dashboard (GET /) and of the
patient page (GET /patients/{id}); sustained requests per second with concurrent clients, and
the number of errors (must be 0). Reference in the same run: GET /healthz (the framework floor).
Scale with OPENITB_BENCH_PATIENTS, OPENITB_BENCH_VISITS, OPENITB_BENCH_SECONDS,
OPENITB_BENCH_CLIENTS (concurrent clients, 8) and OPENITB_BENCH_WORKERS (server processes, 1).
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

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


def latencies(client: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for p in paths:
        t0 = time.perf_counter()
        r = client.get(p)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, (p, r.status_code)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    patients = int(os.environ.get("OPENITB_BENCH_PATIENTS", "10000"))
    visits = int(os.environ.get("OPENITB_BENCH_VISITS", "500000"))
    seconds = float(os.environ.get("OPENITB_BENCH_SECONDS", "10"))
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    db = out / "clinic-bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    rng = random.Random(7)
    t0 = time.perf_counter()
    seed(url, patients, visits, rng)
    print(f"seeded {patients} patients, {visits} visits, {3 * patients} refills in "
          f"{time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
    port = free_port()
    env = {**os.environ, "OPENITB_DATABASE_URL": url, "OPENITB_DEMO": "1"}
    server_workers = int(os.environ.get("OPENITB_BENCH_WORKERS", "1"))
    print(f"uvicorn with {server_workers} worker processes")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "openitb.web.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--workers", str(server_workers),
         # as `itb serve` does: TCP_NODELAY on every connection (no keep-alive penalty)
         "--http", "openitb.web.serving:NoDelayH11Protocol"], env=env)
    base = f"http://127.0.0.1:{port}"
    errors = 0
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                print("server did not start")
                return 1
            time.sleep(0.2)
        client = signed_in_client(base)
        ids = [rng.randint(1, patients) for _ in range(200)]
        latencies(client, ["/", f"/patients/{ids[0]}", "/healthz"])  # warm up
        floor = latencies(client, ["/healthz"] * 200)
        dash = latencies(client, ["/"] * 60)
        page = latencies(client, [f"/patients/{i}" for i in ids])
        api = latencies(client, [f"/api/v1/patients/{i}" for i in ids[:100]])
        items = client.get("/api/v1/dashboard").json()
        print(f"dashboard: {len(items)} items")
        for name, xs in (("healthz (reference)", floor), ("dashboard GET /", dash),
                         ("patient page GET /patients/{id}", page),
                         ("patient JSON GET /api/v1/patients/{id}", api)):
            med = statistics.median(xs)
            print(f"{name:40s} median {med * 1000:7.1f} ms  p99 {pct(xs, 0.99) * 1000:7.1f} ms  "
                  f"x{med / statistics.median(floor):.0f} the reference")
        # Sustained load: concurrent clients over loopback, patient pages and the dashboard.
        workers = int(os.environ.get("OPENITB_BENCH_CLIENTS", "8"))
        counts = [0] * workers
        errs = [0] * workers
        stop = time.time() + seconds

        def work(k: int) -> None:
            c = signed_in_client(base)
            r2 = random.Random(k)
            while time.time() < stop:
                path = "/" if r2.random() < 0.1 else f"/patients/{r2.randint(1, patients)}"
                try:
                    ok = c.get(path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                counts[k] += 1
                errs[k] += 0 if ok else 1

        threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
        t1 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t1
        errors = sum(errs)
        print(f"sustained: {sum(counts) / elapsed:.0f} requests/s with {workers} concurrent "
              f"clients over {elapsed:.1f} s (90 % patient pages, 10 % dashboard), "
              f"{errors} errors")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
