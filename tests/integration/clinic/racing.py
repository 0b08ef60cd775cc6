"""Racing clients over real HTTP: the clinic served by uvicorn on loopback, every write endpoint
hit by N clients at the same moment (a barrier), then the books are checked.

For every endpoint: no 5xx; each accepted change has exactly one audit row (``ok``) and each 409
exactly one refusal row (code ``conflict``); and the database holds what was accepted, nothing
lost (one PATCH of one version wins and its value is kept, one registration per MRN, as many
refills, programs, MRI records as were accepted, the clock moved by as many days as accepted).

Used by tests/integration/clinic/test_race.py (a few clients, `make test`) and by
benchmarks/bench_clinic_race.py (20 clients, SQLite and PostgreSQL, `make bench`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from openitb.clinic import services
from openitb.clinic.demo import DEMO_PASSWORD
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM, Actor
from openitb.store.models import (
    Alarm,
    AuditEntry,
    MriRecord,
    Patient,
    Program,
    Pump,
    Refill,
    Setting,
    User,
)
from openitb.web.app import create_app

DR = Actor("dr.rivera", "physician")
RESPONDER = [{"dose_mcg": 50, "effect_hours": 6,
              "mas_before": {"hip_adductors": 3, "knee_extensors": 3},
              "mas_after": {"hip_adductors": 1.5, "knee_extensors": 2}}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(clinic: Clinic) -> Iterator[str]:
    """The clinic app served by uvicorn in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(clinic, demo=True), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the clinic server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def signed_in_client(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=120)
    token = c.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = c.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD},
               headers={"X-CSRF-Token": token})
    r.raise_for_status()
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: Callable[[int], dict[str, Any] | None]
    action: str  # the audit action of an accepted change
    role: str = "physician"
    one_winner: bool = False
    late: tuple[str, ...] = ()  # refusal codes (422) a request arriving after the winner may get
    check: Callable[[Clinic, list[tuple[int, int, Any]]], str | None] = lambda c, r: None
    review: bool = False  # a kernel change: each client reviews (path + "/review") first


@dataclass
class Outcome:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    audited_ok: int = 0
    conflicts: int = 0
    audited_conflicts: int = 0
    problem: str | None = None

    @property
    def failures(self) -> list[str]:
        out = []
        if any(s >= 500 for s in self.statuses):
            out.append(f"{self.name}: 5xx {dict(self.statuses)}")
        if self.audited_ok != self.accepted:
            out.append(f"{self.name}: {self.accepted} accepted but {self.audited_ok} audited")
        if self.audited_conflicts != self.conflicts:
            out.append(f"{self.name}: {self.conflicts} x 409 but {self.audited_conflicts} "
                       "refusal rows")
        if self.problem:
            out.append(f"{self.name}: {self.problem}")
        return out


def _count(clinic: Clinic, model: Any, *where: Any) -> int:
    with clinic.factory() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _patient(clinic: Clinic, mrn: str, stage: str) -> int:
    """A fresh patient at ``stage`` (candidate, screened or implanted)."""
    fields = {"mrn": mrn, "name": f"Race {mrn}", "birth_date": "1980-05-05",
              "origin": "spinal", "weight_kg": "70", "injury_level": "T10"}
    with clinic.uow(DR) as u:
        pid = services.register_patient(u, fields).id
    if stage in ("screened", "implanted"):
        with clinic.uow(DR) as u:
            services.record_screening(u, pid, RESPONDER)
    if stage == "implanted":
        implant = {"profile": "itb-20", "serial": f"SN-{mrn}", "catheter_length_cm": 90,
                   "tip_level": "T10", "volume_ml": 20, "concentration": 500,
                   "dose_per_day": 300, "confirmed": True}
        with clinic.uow(DR) as u:  # reviewed, then confirmed with the review's token
            token = services.implant_review(u, pid, implant).token
            services.implant(u, pid, {**implant, "review_token": token})
    return pid


def cases(clinic: Clinic, tag: str) -> list[Case]:
    """Every write endpoint of the API, each on records of its own."""
    edit = _patient(clinic, f"E-{tag}", "candidate")
    screen = _patient(clinic, f"S-{tag}", "candidate")
    screened = _patient(clinic, f"I-{tag}", "screened")
    pump = _patient(clinic, f"P-{tag}", "implanted")
    replaced = _patient(clinic, f"R-{tag}", "implanted")
    with clinic.uow(DR) as u:
        mri_id = services.record_mri(u, pump, {"minutes": 20}).id
        version = u.session.get(Patient, edit).version  # type: ignore[union-attr]
        alarm_id = u.session.scalar(select(Alarm.id).where(Alarm.acknowledged_at.is_(None))
                                    .order_by(Alarm.id))
        nurse_id = u.session.scalar(select(User.id).where(User.username == "nurse.kim"))
        now = u.now

    def weight_kept(c: Clinic, results: list[tuple[int, int, Any]]) -> str | None:
        winners = [i for i, status, _ in results if status == 200]
        with c.factory() as s:
            weight = s.get(Patient, edit).weight_kg  # type: ignore[union-attr]
        if len(winners) != 1 or weight != 70 + winners[0]:
            return f"winners {winners}, stored weight {weight}"
        return None

    def rows(model: Any, *where: Any) -> Callable[[Clinic, list[tuple[int, int, Any]]], str | None]:
        before = _count(clinic, model, *where)

        def check(c: Clinic, results: list[tuple[int, int, Any]]) -> str | None:
            accepted = sum(1 for _, st, _ in results if st < 300)
            made = _count(c, model, *where) - before
            return None if made == accepted else f"{accepted} accepted, {made} rows written"
        return check

    def clock_moved(c: Clinic, results: list[tuple[int, int, Any]]) -> str | None:
        accepted = sum(1 for _, st, _ in results if st < 300)
        with c.factory() as s:
            row = s.get(Setting, "clock_now")
            moved = datetime.fromisoformat(row.value).astimezone(UTC) - now  # type: ignore[union-attr]
        return None if moved == timedelta(days=accepted) else \
            f"{accepted} days accepted, clock moved {moved}"

    future = (now + timedelta(days=30)).date().isoformat()
    return [
        # Client 0 sends the weight the record has (70 kg): a no-op edit of a stale version is
        # refused too.
        Case("PATCH patient (one version)", "PATCH", f"/api/v1/patients/{edit}",
             lambda i: {"version": version, "weight_kg": 70 + i}, "update_patient",
             one_winner=True, check=weight_kept),
        Case("register one MRN", "POST", "/api/v1/patients",
             lambda i: {"mrn": f"MRN-{tag}", "name": f"Twin {i}", "birth_date": "1980-01-01",
                        "origin": "spinal", "weight_kg": 70}, "register_patient",
             one_winner=True, check=rows(Patient, Patient.mrn == f"MRN-{tag}")),
        Case("checklist", "PUT", f"/api/v1/patients/{edit}/checklist",
             lambda i: {"body_size": True, "note": f"race {i}"}, "set_checklist"),
        Case("screening", "POST", f"/api/v1/patients/{screen}/screenings",
             lambda i: {"doses": RESPONDER}, "record_screening"),
        Case("implant", "POST", f"/api/v1/patients/{screened}/implant",
             lambda i: {"profile": "itb-20", "serial": f"SN-I-{tag}-{i}",
                        "catheter_length_cm": 90, "tip_level": "T10", "volume_ml": 20,
                        "concentration": 500, "dose_per_day": 300, "confirmed": True},
             "implant", review=True, one_winner=True, late=("stage",), check=rows(Pump, Pump.patient_id == screened)),
        Case("program", "POST", f"/api/v1/patients/{pump}/program",
             lambda i: {"dose_per_day": 300 + i, "confirmed": True}, "program", review=True,
             check=rows(Program, Program.patient_id == pump)),
        Case("refill", "POST", f"/api/v1/patients/{pump}/refill",
             lambda i: {"withdrawn_ml": 0, "volume_ml": 20, "concentration": 500,
                        "confirmed": True, "note": f"race {i}",
                        "override_reason": "race: none withdrawn"}, "refill", review=True,
             check=rows(Refill, Refill.patient_id == pump)),
        Case("MRI", "POST", f"/api/v1/patients/{pump}/mri", lambda i: {"minutes": 10},
             "record_mri", check=rows(MriRecord, MriRecord.patient_id == pump)),
        Case("MRI check", "POST", f"/api/v1/mri/{mri_id}/check", lambda i: None,
             "post_mri_check"),
        Case("plan replacement", "POST", f"/api/v1/patients/{pump}/replacement",
             lambda i: {"planned_date": future}, "plan_replacement"),
        Case("replace pump", "POST", f"/api/v1/patients/{replaced}/replace",
             lambda i: {"serial": f"SN-R-{tag}-{i}", "volume_ml": 20, "confirmed": True},
             "replace_pump", review=True,
             check=rows(Pump, Pump.patient_id == replaced)),
        Case("acknowledge alarm", "POST", f"/api/v1/alarms/{alarm_id}/acknowledge",
             lambda i: {"note": f"called the patient ({i})"}, "acknowledge_alarm",
             one_winner=True),
        Case("advance clock", "POST", "/api/v1/clock/advance", lambda i: {"step": "day"},
             "advance_clock", check=clock_moved),
        Case("create one username", "POST", "/api/v1/users",
             lambda i: {"username": f"race.{tag}", "role": "nurse"}, "create_user",
             role="admin", one_winner=True, check=rows(User, User.username == f"race.{tag}")),
        Case("patient account", "POST", f"/api/v1/patients/{pump}/accounts",
             lambda i: {"username": f"carer.{tag}"}, "create_user", one_winner=True),
        Case("reset link", "POST", f"/api/v1/users/{nurse_id}/reset-link", lambda i: None,
             "issue_password_link", role="admin"),
        Case("calendar feed", "POST", "/api/v1/me/calendar-feed", lambda i: None,
             "feed_token"),
    ]


def race(clinic: Clinic, clients: int, tag: str = "a") -> list[Outcome]:
    """Run every case with ``clients`` parallel clients; the outcomes, in case order."""
    with clinic.uow(SYSTEM) as u:  # the demo clock, so the advance case is allowed
        from openitb.clinic.clock import set_demo_clock

        set_demo_clock(u.session, u.now)
    todo = cases(clinic, tag)
    outcomes = []
    with served(clinic) as base:
        pool = {role: [signed_in_client(base, user) for _ in range(clients)]
                for role, user in (("physician", "dr.rivera"), ("admin", "admin"))}
        try:
            for case in todo:
                outcomes.append(_run(clinic, case, pool[case.role]))
        finally:
            for group in pool.values():
                for c in group:
                    c.close()
    return outcomes


def _run(clinic: Clinic, case: Case, clients: list[httpx.Client]) -> Outcome:
    with clinic.factory() as s:
        start = int(s.scalar(select(func.max(AuditEntry.id))) or 0)
    barrier = threading.Barrier(len(clients))
    results: list[tuple[int, int, Any]] = []
    lock = threading.Lock()

    def one(i: int, c: httpx.Client) -> None:
        body = case.body(i)
        if case.review and body is not None:  # confirm what this client's review showed
            seen = c.post(case.path + "/review", json=body)
            body = {**body, "review_token": seen.json().get("review_token")}
        barrier.wait()
        r = c.request(case.method, case.path, json=body) if body is not None \
            else c.request(case.method, case.path)
        with lock:
            results.append((i, r.status_code, r.text[:300]))

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = Outcome(case.name, Counter(st for _, st, _ in results))
    out.accepted = sum(1 for _, st, _ in results if st < 300)
    out.conflicts = out.statuses.get(409, 0)
    with clinic.factory() as s:
        new = list(s.scalars(select(AuditEntry).where(AuditEntry.id > start)))
    out.audited_ok = sum(1 for e in new if e.outcome == "ok" and e.action == case.action)
    out.audited_conflicts = sum(1 for e in new if e.outcome == "refused" and e.after
                                and e.after.get("code") == "conflict")
    out.problem = case.check(clinic, results)
    if case.one_winner and out.accepted != 1:
        out.problem = (out.problem or "") + f" {out.accepted} accepted, one expected"
    unexpected = [r for r in results if r[1] not in (200, 201, 409)
                  and not (r[1] == 422 and any(f'"error":"{c}"' in r[2] for c in case.late))]
    if unexpected:
        out.problem = (out.problem or "") + f" unexpected answers: {unexpected[:2]}"
    return out
