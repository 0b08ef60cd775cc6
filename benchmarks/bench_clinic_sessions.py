"""Telemetry sessions and commands per confirmed web refill and per program change.

Drives the clinic's web pages (review, then confirm with the review's token) over the default
TelemetryPumpGateway and counts what reached the pumps (GatewayCounters: sessions, commands,
frames). The reference measured in the same run is one interrogation (one session, one
read_status). Issue 11's target: a confirm is one session with at most four commands (read,
writes, read-back); a review is one session with one read and stores nothing. Before (main,
measured by hand for the issue): one confirmed web refill opened 7 sessions and sent 11
commands, 7 of them read_status."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from openitb.clinic.demo import DEMO_PASSWORD, patient_ids, seed_demo
from openitb.clinic.facade import Clinic
from openitb.clinic.telemetry_gateway import TelemetryPumpGateway
from openitb.store.db import make_engine
from openitb.web.app import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN = re.compile(r'name="review_token" id="review_token" value="([0-9a-f.]+)"')
MAIN_REFILL = (7, 11)  # sessions, commands of one confirmed web refill on main (issue 11)
TARGET_COMMANDS = 4


def _count(gw: TelemetryPumpGateway) -> tuple[int, int, int]:
    return gw.counters.sessions, len(gw.counters.commands), gw.counters.frames


def _delta(gw: TelemetryPumpGateway, before: tuple[int, int, int]) -> dict[str, Any]:
    s, c, f = _count(gw)
    return {"sessions": s - before[0], "commands": c - before[1], "frames": f - before[2],
            "names": gw.counters.commands[before[1]:]}


def _web_change(c: TestClient, gw: TelemetryPumpGateway, url: str,
                form: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], float]:
    page = c.get(url).text
    form = {**form, "csrf_token": CSRF.search(page).group(1)}  # type: ignore[union-attr]
    t0 = time.perf_counter()
    before = _count(gw)
    review = c.post(url, data=form)
    assert review.status_code == 200, review.text[-500:]
    rv = _delta(gw, before)
    token = TOKEN.search(review.text).group(1)  # type: ignore[union-attr]
    before = _count(gw)
    done = c.post(url, data={**form, "confirmed": "on", "review_token": token},
                  follow_redirects=False)
    assert done.status_code == 303, done.text[-800:]
    return rv, _delta(gw, before), time.perf_counter() - t0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        gw = TelemetryPumpGateway(b"bench-secret-of-the-clinic-pumps")
        clinic = Clinic(make_engine(f"sqlite:///{Path(tmp) / 'clinic.db'}"), gateway=gw)
        seed_demo(clinic)
        ids = patient_ids(clinic)
        c = TestClient(create_app(clinic, demo=True))
        page = c.get("/login").text
        c.post("/login", data={"csrf_token": CSRF.search(page).group(1),  # type: ignore[union-attr]
                               "username": "dr.rivera", "password": DEMO_PASSWORD})
        # Reference: one interrogation (the pump read once).
        with clinic.uow(clinic_actor()) as u:
            from openitb.clinic import queries

            pump = queries.patient_record(u, ids["ITB-1003"])["pump"]
            before = _count(gw)
            with gw.session(pump, u.now) as s:
                s.read()
            ref = _delta(gw, before)
            u.session.rollback()
        rows = []
        pid = ids["ITB-1004"]
        exp = float(re.search(r'id="expected">([\d.]+) mL',  # type: ignore[union-attr]
                              c.get(f"/patients/{pid}/refill").text).group(1))
        rows.append(("web refill (same concentration)", *_web_change(
            c, gw, f"/patients/{pid}/refill",
            {"withdrawn_ml": f"{exp - 0.3:.1f}", "volume_ml": "40", "concentration": "500"})))
        pid = ids["ITB-1002"]
        exp = float(re.search(r'id="expected">([\d.]+) mL',  # type: ignore[union-attr]
                              c.get(f"/patients/{pid}/refill").text).group(1))
        rows.append(("web refill, 500 -> 1000 mcg/mL (bridge)", *_web_change(
            c, gw, f"/patients/{pid}/refill",
            {"withdrawn_ml": f"{exp - 0.3:.1f}", "volume_ml": "20", "concentration": "1000",
             "override_reason": "rest of the path clears at the new flow"})))
        rows.append(("web program change", *_web_change(
            c, gw, f"/patients/{ids['ITB-1003']}/program",
            {"mode": "continuous", "dose_per_day": "320", "context": "maintenance"})))
        clinic.engine.dispose()
    print(f"reference: one interrogation = {ref['sessions']} session, {ref['commands']} "
          f"command, {ref['frames']} frames")
    print(f"main (issue 11): one confirmed web refill = {MAIN_REFILL[0]} sessions, "
          f"{MAIN_REFILL[1]} commands")
    failed = 0
    for name, rv, done, secs in rows:
        print(f"{name}: review {rv['sessions']} session / {rv['commands']} command "
              f"({', '.join(rv['names'])}); confirm {done['sessions']} session / "
              f"{done['commands']} commands ({', '.join(done['names'])}), {done['frames']} "
              f"frames; x{done['commands'] / max(ref['commands'], 1):.0f} the reference; "
              f"{secs * 1000:.0f} ms for both steps")
        if done["sessions"] != 1 or rv["sessions"] != 1 or rv["commands"] != 1:
            failed += 1
        over = done["commands"] > TARGET_COMMANDS
        print(f"  target (1 session, at most {TARGET_COMMANDS} commands): "
              f"{'MISSED' if over else 'met'}"
              + (" (a concentration change writes refill, program and bridge_bolus)"
                 if over else ""))
    total = rows[0][2]
    print(f"confirmed web refill: {total['sessions']} session and {total['commands']} commands "
          f"(main: {MAIN_REFILL[0]} and {MAIN_REFILL[1]}: "
          f"x{MAIN_REFILL[1] / max(total['commands'], 1):.1f} fewer commands)")
    return 1 if failed else 0


def clinic_actor() -> Any:
    from openitb.clinic.uow import Actor

    return Actor("bench", "physician")


if __name__ == "__main__":
    raise SystemExit(main())
