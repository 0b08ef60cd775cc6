"""The role matrix: every endpoint times every role, the expected allow or deny; and a patient
trying to read another patient's record by id. A new endpoint must be added to the table."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from openitb.clinic.accounts import PERMISSIONS
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM
from openitb.store.models import Alarm, AuditEntry, MriRecord
from openitb.web.app import create_app

from .conftest import csrf_of, login

ROLES = ("anonymous", "physician", "nurse", "patient", "admin")
USERS = {"physician": "dr.rivera", "nurse": "nurse.kim", "patient": "mia", "admin": "admin"}
SIGNED_IN = "signed_in"  # any signed-in role; the record itself checks whose it is
PUBLIC = "public"
RECORD = "record"  # staff, or the patient whose record it is (the URL names the own record)

# (method, path) -> permission (clinic.accounts.PERMISSIONS), SIGNED_IN or PUBLIC
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/login"): PUBLIC, ("POST", "/login"): PUBLIC, ("POST", "/logout"): PUBLIC,
    ("GET", "/"): SIGNED_IN,
    ("GET", "/patients"): "view_clinic",
    ("GET", "/patients/new"): "edit_patient", ("POST", "/patients/new"): "edit_patient",
    ("GET", "/patients/{patient_id}"): RECORD,
    ("GET", "/me"): "view_own",
    ("POST", "/patients/{patient_id}/edit"): "edit_patient",
    ("POST", "/patients/{patient_id}/checklist"): "checklist",
    ("GET", "/patients/{patient_id}/screening"): "screening",
    ("POST", "/patients/{patient_id}/screening"): "screening",
    ("GET", "/patients/{patient_id}/implant"): "implant",
    ("POST", "/patients/{patient_id}/implant"): "implant",
    ("GET", "/patients/{patient_id}/program"): "program",
    ("POST", "/patients/{patient_id}/program"): "program",
    ("GET", "/patients/{patient_id}/refill"): "refill",
    ("POST", "/patients/{patient_id}/refill"): "refill",
    ("POST", "/patients/{patient_id}/mri"): "mri",
    ("POST", "/mri/{mri_id}/check"): "mri",
    ("POST", "/patients/{patient_id}/replacement"): "replacement",
    ("POST", "/patients/{patient_id}/replace"): "replacement",
    ("GET", "/patients/{patient_id}/replace"): "replacement",
    ("POST", "/api/v1/patients/{patient_id}/replace/review"): "replacement",
    ("POST", "/api/v1/patients/{patient_id}/implant/review"): "implant",
    ("POST", "/api/v1/patients/{patient_id}/replace"): "replacement",
    ("GET", "/alarms"): "view_clinic",
    ("POST", "/alarms/{alarm_id}/ack"): "acknowledge",
    ("POST", "/clock"): "clock",
    ("GET", "/admin"): "accounts", ("POST", "/admin/users"): "accounts",
    ("POST", "/api/v1/auth/login"): PUBLIC, ("GET", "/api/v1/auth/csrf"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): PUBLIC,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/dashboard"): "view_clinic",
    ("GET", "/api/v1/patients"): "view_clinic",
    ("POST", "/api/v1/patients"): "edit_patient",
    ("GET", "/api/v1/patients/{patient_id}"): RECORD,
    ("PATCH", "/api/v1/patients/{patient_id}"): "edit_patient",
    ("PUT", "/api/v1/patients/{patient_id}/checklist"): "checklist",
    ("POST", "/api/v1/patients/{patient_id}/screenings"): "screening",
    ("POST", "/api/v1/patients/{patient_id}/implant"): "implant",
    ("POST", "/api/v1/patients/{patient_id}/program/review"): "program",
    ("POST", "/api/v1/patients/{patient_id}/program"): "program",
    ("POST", "/api/v1/patients/{patient_id}/refill/review"): "refill",
    ("POST", "/api/v1/patients/{patient_id}/refill"): "refill",
    ("POST", "/api/v1/patients/{patient_id}/mri"): "mri",
    ("POST", "/api/v1/mri/{mri_id}/check"): "mri",
    ("POST", "/api/v1/patients/{patient_id}/replacement"): "replacement",
    ("GET", "/api/v1/alarms"): "view_clinic",
    ("POST", "/api/v1/alarms/{alarm_id}/acknowledge"): "acknowledge",
    ("GET", "/api/v1/clock"): SIGNED_IN,
    ("POST", "/api/v1/clock/advance"): "clock",
    ("GET", "/api/v1/audit"): "audit",
    ("POST", "/api/v1/users"): "accounts",
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/v1/docs"): PUBLIC,  # Swagger UI on the (public) OpenAPI document
    ("GET", "/patients/{patient_id}/wallet-card.pdf"): RECORD,
    ("GET", "/patients/{patient_id}/summary.pdf"): RECORD,
    ("GET", "/patients/{patient_id}/refill.ics"): RECORD,
    ("GET", "/api/v1/patients/{patient_id}/fhir"): RECORD,
    ("GET", "/api/v1/calendar/refills.ics"): "view_clinic",
    ("POST", "/calendar-feed"): "view_clinic",
    ("GET", "/calendar/{token}/refills.ics"): PUBLIC,  # the token is the credential
    ("POST", "/calendar-feed/revoke"): "view_clinic",
    ("POST", "/api/v1/me/calendar-feed"): "view_clinic",
    ("DELETE", "/api/v1/me/calendar-feed"): "view_clinic",
    ("GET", "/account"): SIGNED_IN, ("POST", "/account/password"): SIGNED_IN,
    ("POST", "/api/v1/me/password"): SIGNED_IN,
    ("GET", "/password/{token}"): PUBLIC, ("POST", "/password/{token}"): PUBLIC,
    ("POST", "/api/v1/password/{token}"): PUBLIC,  # the one-time link is the credential
    ("POST", "/admin/users/{user_id}/reset"): "accounts",
    ("POST", "/api/v1/users/{user_id}/reset-link"): "accounts",
    ("GET", "/patients/{patient_id}/account"): "link_patient",
    ("POST", "/patients/{patient_id}/account"): "link_patient",
    ("POST", "/api/v1/patients/{patient_id}/accounts"): "link_patient",
    # issue 17: documents and feeds in the API, personal access tokens (API and account page)
    ("GET", "/api/v1/calendar/{token}/refills.ics"): PUBLIC,  # the token is the credential
    ("GET", "/api/v1/patients/{patient_id}/wallet-card.pdf"): RECORD,
    ("GET", "/api/v1/patients/{patient_id}/summary.pdf"): RECORD,
    ("GET", "/api/v1/patients/{patient_id}/refill.ics"): RECORD,
    ("GET", "/api/v1/me/tokens"): SIGNED_IN, ("POST", "/api/v1/me/tokens"): SIGNED_IN,
    ("DELETE", "/api/v1/me/tokens/{token_id}"): SIGNED_IN,
    ("GET", "/account/tokens"): SIGNED_IN, ("POST", "/account/tokens"): SIGNED_IN,
    ("POST", "/account/tokens/{token_id}/revoke"): SIGNED_IN,
}


def routes(clinic: Clinic) -> list[tuple[str, str]]:
    from openitb.web import api, api_docs, pages, token_pages

    app = create_app(clinic, demo=True)
    out = []
    for r in [*api.router.routes, *api_docs.router.routes, *pages.router.routes,
              *token_pages.router.routes, *app.router.routes]:
        if isinstance(r, APIRoute):
            for m in r.methods:
                out.append((m, r.path))
    return sorted(out)


def test_every_endpoint_is_in_the_matrix(demo_clinic: Clinic) -> None:
    assert set(routes(demo_clinic)) == set(MATRIX)


def allowed(rule: str, role: str) -> bool:
    if rule == PUBLIC:
        return True
    if role == "anonymous":
        return False
    if rule == SIGNED_IN:
        return True
    if rule == RECORD:
        return role in ("physician", "nurse", "patient")
    return role in PERMISSIONS[rule]


def test_role_matrix(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    own = ids["ITB-1003"]  # Mia Lindqvist, whose account is "mia"
    with demo_clinic.uow(SYSTEM) as u:
        alarm_id = u.session.scalars(select(Alarm.id)).first()
        mri_id = u.session.scalars(select(MriRecord.id)).first()
    fill = {"patient_id": str(own), "alarm_id": str(alarm_id), "mri_id": str(mri_id),
            "token": "no-such-token", "user_id": "1", "token_id": "1"}
    failures = []
    for role in ROLES:
        client = TestClient(create_app(demo_clinic, demo=True))
        token = login(client, USERS[role]) if role != "anonymous" else csrf_of(client)
        for (method, path), rule in sorted(MATRIX.items()):
            if path.endswith("/logout") or path.endswith("/login"):
                continue  # they change the session itself; tested in test_web
            url = re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], path)
            kw: dict = {"headers": {"X-CSRF-Token": token}, "follow_redirects": False}
            if method in ("POST", "PUT", "PATCH") and path.startswith("/api/"):
                kw["json"] = {}
            elif method == "POST":
                kw["data"] = {"csrf_token": token}
            r = client.request(method, url, **kw)
            if "{token}" in path:
                assert r.status_code == 404, (role, r.status_code)  # a wrong token: nothing
                continue
            denied = r.status_code in (401, 403) or (
                r.status_code == 303 and r.headers["location"].startswith("/login"))
            expect = allowed(rule, role)
            if expect == denied or r.status_code >= 500:
                failures.append(f"{role} {method} {url}: {r.status_code} "
                                f"(expected {'allow' if expect else 'deny'})")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", ["/patients/{}", "/api/v1/patients/{}"])
def test_patient_reads_only_own_record(demo_clinic: Clinic, path: str) -> None:
    ids = patient_ids(demo_clinic)
    client = TestClient(create_app(demo_clinic, demo=True))
    login(client, "mia")
    assert client.get(path.format(ids["ITB-1003"])).status_code == 200
    for mrn, pid in ids.items():
        if mrn != "ITB-1003":
            r = client.get(path.format(pid))
            assert r.status_code == 403, (mrn, r.status_code)
    assert client.get(path.format(99999)).status_code in (403, 404)
    with demo_clinic.uow(SYSTEM) as u:
        refused = u.session.scalars(select(AuditEntry).where(
            AuditEntry.outcome == "refused", AuditEntry.actor == "mia")).all()
        assert len(refused) >= len(ids) - 1


def test_anonymous_refusals_are_counted_not_one_row_each(demo_clinic: Clinic) -> None:
    """A flood of anonymous requests to protected paths (issue 13: 715 audit rows from one
    flood) adds no audit row: each (hour, path with ids folded, address, code) is one counter."""
    from sqlalchemy import func

    from openitb.store.models import RefusalCount

    client = TestClient(create_app(demo_clinic, demo=True))
    with demo_clinic.uow(SYSTEM) as u:
        rows_before = u.session.scalar(select(func.count()).select_from(AuditEntry))
    for i in range(60):
        assert client.get("/api/v1/dashboard").status_code == 401
        assert client.get(f"/patients/{i + 1}", follow_redirects=False).status_code == 303
    with demo_clinic.uow(SYSTEM) as u:
        assert u.session.scalar(select(func.count()).select_from(AuditEntry)) == rows_before
        counts = {(c.path, c.address, c.code): c.count
                  for c in u.session.scalars(select(RefusalCount))}
    assert counts[("GET /api/v1/dashboard", "testclient", "unauthenticated")] == 60
    assert counts[("GET /patients/{n}", "testclient", "unauthenticated")] == 60
    assert len(counts) == 2
