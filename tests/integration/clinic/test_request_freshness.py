"""Per-request work made cheaper (issue 15) stays exact: what a request learns about its actor
and the clinic clock is read fresh, so a change made by another worker process (here: a second
application on the same database file) takes effect on the very next request; reads write
nothing to the audit trail; the liveness check carries no session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from openitb.clinic.clock import clinic_now
from openitb.clinic.demo import DEMO_PASSWORD
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM
from openitb.store.db import make_engine
from openitb.store.models import AuditEntry, User
from openitb.web.app import create_app

from .conftest import login


@pytest.fixture
def two_workers(demo_clinic: Clinic) -> Iterator[tuple[TestClient, Clinic]]:
    """A served application (worker A) and a second clinic on the same file (worker B)."""
    other = Clinic(make_engine(demo_clinic.engine.url.render_as_string(hide_password=False)),
                   run_migrations=False)
    yield TestClient(create_app(demo_clinic, demo=True)), other
    other.engine.dispose()


def _set_user(clinic: Clinic, username: str, **values: object) -> None:
    with clinic.engine.begin() as conn:
        conn.execute(update(User).where(User.username == username).values(**values))


def test_role_revoked_by_another_worker_takes_effect_on_the_next_request(
        two_workers: tuple[TestClient, Clinic]) -> None:
    client, other = two_workers
    login(client, "nurse.kim")
    assert client.get("/api/v1/patients").status_code == 200
    _set_user(other, "nurse.kim", role="admin")  # staff no longer: may not see patients
    assert client.get("/api/v1/patients").status_code == 403
    _set_user(other, "nurse.kim", role="nurse")
    assert client.get("/api/v1/patients").status_code == 200


def test_deactivation_by_another_worker_signs_out_on_the_next_request(
        two_workers: tuple[TestClient, Clinic]) -> None:
    client, other = two_workers
    login(client, "nurse.kim")
    assert client.get("/api/v1/patients").status_code == 200
    _set_user(other, "nurse.kim", active=False)
    assert client.get("/api/v1/patients").status_code == 401


def test_password_changed_in_another_session_ends_this_one_at_once(
        two_workers: tuple[TestClient, Clinic]) -> None:
    client, other = two_workers
    login(client, "nurse.kim")
    second = TestClient(create_app(other, demo=True))  # the user, in another browser
    token = login(second, "nurse.kim")
    r = second.post("/api/v1/me/password", json={
        "current_password": DEMO_PASSWORD, "new_password": "a-new-password-1"},
        headers={"X-CSRF-Token": token})
    assert r.status_code in (200, 204), r.text
    assert client.get("/api/v1/patients").status_code == 401


def test_demo_clock_moved_by_another_worker_is_seen_on_the_next_request(
        two_workers: tuple[TestClient, Clinic]) -> None:
    from openitb.clinic.clock import set_demo_clock

    client, other = two_workers
    login(client, "nurse.kim")
    before = client.get("/api/v1/clock").json()["now"]
    with other.uow(SYSTEM) as u:
        later = clinic_now(u.session) + timedelta(days=3)
        set_demo_clock(u.session, later)
    now = client.get("/api/v1/clock").json()["now"]
    assert datetime.fromisoformat(now) == later and now != before
    page = client.get("/").text
    assert later.strftime("%Y-%m-%d %H:%M") in page


def test_reading_pages_writes_no_audit_rows(app_client: TestClient, demo_clinic: Clinic) -> None:
    login(app_client, "nurse.kim")
    with demo_clinic.factory() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
        pid = s.scalar(select(func.min(User.patient_id)))
    for path in ("/", "/patients", f"/patients/{pid or 1}", "/alarms", "/api/v1/dashboard"):
        assert app_client.get(path).status_code == 200, path
    with demo_clinic.factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_healthz_carries_no_session_but_the_security_headers(app_client: TestClient) -> None:
    login(app_client, "nurse.kim")
    r = app_client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert "set-cookie" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in r.headers
