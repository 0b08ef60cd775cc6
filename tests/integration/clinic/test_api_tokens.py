"""Personal access tokens: bearer authentication beside the session cookie, scoped to the owner's
role, hashed at rest, audited, expiring and revocable (401 after), made only from a session."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openitb.clinic import api_tokens
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.store.models import ApiToken, AuditEntry, User
from openitb.web.app import create_app

from .conftest import login, page_csrf


def _token(c: TestClient, csrf: str, name: str = "script", **extra: object) -> dict[str, object]:
    r = c.post("/api/v1/me/tokens", json={"name": name, **extra},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _bearer(app: object, token: object) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})  # type: ignore[arg-type]


def test_a_token_acts_with_its_owners_role_and_needs_no_csrf(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    nurse = TestClient(app)
    made = _token(nurse, login(nurse, "nurse.kim"))
    bot = _bearer(app, made["token"])
    assert bot.get("/api/v1/me").json()["username"] == "nurse.kim"
    # an unsafe request without any CSRF header is accepted: there is no cookie to forge
    pid = patient_ids(demo_clinic)["ITB-1003"]
    r = bot.post(f"/api/v1/patients/{pid}/program/review", json={"dose_per_day": 320})
    assert r.status_code == 200 and "set-cookie" not in r.headers
    # a nurse's token cannot do what a nurse cannot
    assert bot.get("/api/v1/audit").status_code == 403
    r = bot.post("/api/v1/users", json={"username": "x.y", "role": "nurse"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    # the FHIR face takes the same token
    assert bot.get("/fhir/Patient", params={"identifier": "ITB-1003"}).status_code == 200
    # the pages never take a bearer token: the browser signs in
    page = bot.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_stored_as_a_hash_audited_and_revoked_is_401(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    doc = TestClient(app)
    csrf = login(doc, "dr.rivera")
    made = _token(doc, csrf, "EHR", expires_in_days=30)
    secret = str(made["token"])
    with demo_clinic.factory() as s:
        row = s.get(ApiToken, made["id"])
        assert row is not None and secret not in (row.token_hash, row.prefix)
        assert row.token_hash == api_tokens._hash(secret)
        assert row.expires_at - row.created_at == timedelta(days=30)
    listed = doc.get("/api/v1/me/tokens").json()
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    assert "token_hash" not in listed[0]
    bot = _bearer(app, secret)
    assert bot.get("/api/v1/patients").status_code == 200
    r = doc.delete(f"/api/v1/me/tokens/{made['id']}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = bot.get("/api/v1/patients")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    # revoking again changes nothing; every create and revoke is one audit row
    doc.delete(f"/api/v1/me/tokens/{made['id']}", headers={"X-CSRF-Token": csrf})
    with demo_clinic.factory() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).where(
            AuditEntry.entity == "api_token", AuditEntry.outcome == "ok"))]
    assert actions == ["api_token_create", "api_token_revoke"]


def test_expired_unknown_and_deactivated_are_401(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    doc = TestClient(app)
    made = _token(doc, login(doc, "dr.rivera"), expires_in_days=1)
    bot = _bearer(app, made["token"])
    assert bot.get("/api/v1/patients").status_code == 200
    with demo_clinic.factory() as s:  # a day later by the wall clock
        row = s.get(ApiToken, made["id"])
        assert row is not None
        row.expires_at = api_tokens._wall_now() - timedelta(seconds=1)
        s.commit()
    assert bot.get("/api/v1/patients").status_code == 401
    for bad in ("itb_" + "x" * 43, "nonsense", "itb_" + "y" * 500, ""):
        r = _bearer(app, bad).get("/api/v1/patients")
        assert r.status_code == 401, bad
    fresh = _token(doc, login(doc, "dr.rivera"))
    with demo_clinic.factory() as s:
        user = s.scalar(select(User).where(User.username == "dr.rivera"))
        assert user is not None
        user.active = False
        s.commit()
    assert _bearer(app, fresh["token"]).get("/api/v1/patients").status_code == 401


def test_a_token_cannot_make_tokens_nor_touch_anothers(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    doc, nurse = TestClient(app), TestClient(app)
    mine = _token(doc, login(doc, "dr.rivera"))
    nurse_csrf = login(nurse, "nurse.kim")
    bot = _bearer(app, mine["token"])
    r = bot.post("/api/v1/me/tokens", json={"name": "successor"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = nurse.delete(f"/api/v1/me/tokens/{mine['id']}", headers={"X-CSRF-Token": nurse_csrf})
    assert r.status_code == 404  # another user's token is not even named
    assert bot.get("/api/v1/patients").status_code == 200
    # bad input names the field and writes nothing
    for body, field in (({"name": ""}, "name"), ({"name": "a\x00b"}, "name"),
                        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
                        ({"name": "x", "expires_in_days": 366}, "expires_in_days"),
                        ({"name": "x" * 81}, "name")):
        r = nurse.post("/api/v1/me/tokens", json=body, headers={"X-CSRF-Token": nurse_csrf})
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
    assert nurse.get("/api/v1/me/tokens").json() == []
    # with the session, the CSRF header is still required
    r = nurse.post("/api/v1/me/tokens", json={"name": "x"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"


def test_active_tokens_are_bounded(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    doc = TestClient(app)
    csrf = login(doc, "dr.rivera")
    for i in range(api_tokens.MAX_ACTIVE):
        _token(doc, csrf, f"t{i}")
    r = doc.post("/api/v1/me/tokens", json={"name": "one more"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "revoke one first" in r.json()["reason"]


def test_account_page_makes_lists_and_revokes_tokens(demo_clinic: Clinic) -> None:
    app = create_app(demo_clinic, demo=True)
    c = TestClient(app)
    login(c, "nurse.kim")
    assert 'href="/account/tokens"' in c.get("/account").text
    page = c.get("/account/tokens").text
    assert "You have no tokens." in page
    r = c.post("/account/tokens", data={"csrf_token": page_csrf(page), "name": "EHR sync",
                                        "expires_in_days": "30"})
    assert r.status_code == 201
    secret = r.text.split('id="new-token" readonly size="60" value="')[1].split('"')[0]
    assert secret.startswith("itb_") and "EHR sync" in r.text
    assert _bearer(app, secret).get("/api/v1/me").json()["username"] == "nurse.kim"
    again = c.get("/account/tokens").text
    assert secret not in again and "active" in again  # shown once
    bad = c.post("/account/tokens", data={"csrf_token": page_csrf(again), "name": "",
                                          "expires_in_days": "9999"})
    assert bad.status_code == 422 and "name" in bad.text
    [row] = c.get("/api/v1/me/tokens").json()
    done = c.post(f"/account/tokens/{row['id']}/revoke", data={"csrf_token": page_csrf(again)})
    assert done.status_code == 200 and "revoked" in done.text
    assert _bearer(app, secret).get("/api/v1/me").status_code == 401
    forged = c.post(f"/account/tokens/{row['id']}/revoke", data={"csrf_token": "nope"})
    assert forged.status_code == 403


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guess=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=120))
def test_property_no_guessed_bearer_token_gets_in(demo_clinic: Clinic, guess: str) -> None:
    """Any header value that is not an issued token is 401 (never 200, never 5xx), with or
    without the token prefix."""
    app = create_app(demo_clinic, demo=True)
    for value in (guess, api_tokens.PREFIX + guess):
        r = _bearer(app, value).get("/api/v1/patients")
        assert r.status_code == 401, (value, r.status_code)

