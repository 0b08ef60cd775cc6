"""The clinic under attack (issue 13): each case found against `itb serve --demo`, as a test.

Sign-in (one user-name normal form for the throttle, the lookup and account creation; delays
per address and per account, no lockout), racing writes (409 and a refusal row, never 500),
the audit trail (append-only on every SQL path, a hash chain `itb audit verify` checks),
accounts (no administrator sets or learns a password; patient links by the clinician), inputs
(body limit, bounded echoes, CSRF before the body), calendar feeds, flash messages, search.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from openitb.clinic import accounts, services
from openitb.clinic.demo import DEMO_PASSWORD, patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM, Actor, Conflict
from openitb.errors import InvalidInput, RefusedOperation
from openitb.store.models import AuditEntry, PasswordLink, Patient, User
from openitb.web.app import create_app
from openitb.web.throttle import ACCOUNT_MAX_S, ADDRESS_FREE, LoginThrottle

from .conftest import csrf_of, login, page_csrf

RN = Actor("nurse.kim", "nurse", 2)


def app_with_clock(clinic: Clinic, now: list[float], **kw: object) -> object:
    app = create_app(clinic, demo=True, **kw)  # type: ignore[arg-type]
    app.state.login_throttle = LoginThrottle(clock=lambda: now[0])
    return app


def api_login(c: TestClient, username: str, password: str = DEMO_PASSWORD) -> httpx.Response:
    return c.post("/api/v1/auth/login", json={"username": username, "password": password},
                  headers={"X-CSRF-Token": csrf_of(c)})


def refusals(clinic: Clinic, **where: str) -> list[AuditEntry]:
    with clinic.factory() as s:
        q = select(AuditEntry).where(AuditEntry.outcome == "refused")
        for k, v in where.items():
            q = q.where(getattr(AuditEntry, k) == v)
        return list(s.scalars(q))


# ---- sign-in ---------------------------------------------------------------------------------
def test_control_characters_and_padding_do_not_bypass_the_throttle(demo_clinic: Clinic) -> None:
    now = [0.0]
    c = TestClient(app_with_clock(demo_clinic, now))  # type: ignore[arg-type]
    for _ in range(ADDRESS_FREE + 2):
        api_login(c, "nurse.kim", "guess")
    # Was 200 on main: the throttle keyed on the raw name, the lookup on a stripped one.
    assert api_login(c, "nurse.kim\x02").status_code in (401, 429)
    token = page_csrf(c.get("/login").text)
    r = c.post("/login", data={"username": "nurse.kim" + " " * 200 + "zz",
                               "password": DEMO_PASSWORD, "csrf_token": token},
               follow_redirects=False)
    assert r.status_code in (401, 429)
    assert c.get("/api/v1/me").status_code == 401
    # Even once the wait is over, the odd names are not the account.
    now[0] += 10_000
    assert api_login(c, "nurse.kim\x02").status_code == 401
    assert api_login(c, "nurse.kim" + " " * 200 + "zz").status_code == 401
    assert api_login(c, "  NURSE.KIM ").status_code == 200  # the same name, normalised


def test_failures_from_one_address_do_not_lock_the_owner_out(demo_clinic: Clinic) -> None:
    """Was: 5 failures from anyone locked the account for 15 minutes."""
    now = [0.0]
    app = app_with_clock(demo_clinic, now)
    attacker = TestClient(app, client=("203.0.113.9", 4000))  # type: ignore[arg-type]
    for _ in range(40):  # as fast as the delays let it
        r = api_login(attacker, "nurse.kim", "guess")
        assert r.status_code in (401, 429)
        now[0] += 1
    assert api_login(attacker, "nurse.kim").status_code == 429  # the attacker's address waits
    owner = TestClient(app, client=("198.51.100.7", 5000))  # type: ignore[arg-type]
    r = api_login(owner, "nurse.kim")
    if r.status_code == 429:  # at most the account's short delay, never a lockout
        wait = int(r.json()["reason"].split("try again in ")[1].split()[0])
        assert wait <= ACCOUNT_MAX_S
        now[0] += wait
        r = api_login(owner, "nurse.kim")
    assert r.status_code == 200


@given(st.text(max_size=40))
def test_user_name_normal_form_is_idempotent(raw: str) -> None:
    try:
        name = accounts.normalise_username(raw)
    except InvalidInput:
        return
    assert accounts.normalise_username(name) == name
    assert 1 <= len(name) <= 80 and name == name.strip()


def test_one_normal_form_for_creation_and_sign_in(empty_clinic: Clinic) -> None:
    with empty_clinic.uow(SYSTEM) as u:
        accounts.create_user(u, "Nurse.Kim", "Kim", "nurse", "long-enough-pw")
    for twin in ("ＮＵＲＳＥ.ＫＩＭ", "nurse.kim ", "NURSE.KIM"):  # fullwidth letters: NFKC
        with pytest.raises(RefusedOperation, match="taken"), empty_clinic.uow(SYSTEM) as u:
            accounts.create_user(u, twin, "Twin", "nurse", "long-enough-pw")
        with empty_clinic.uow(Actor("-", "anonymous")) as u:
            assert accounts.authenticate(u, twin, "long-enough-pw").username == "nurse.kim"
    with pytest.raises(InvalidInput, match="username"), empty_clinic.uow(SYSTEM) as u:
        accounts.create_user(u, "a" * 81, "Long", "nurse", "long-enough-pw")  # refused, not cut


# ---- racing writes ---------------------------------------------------------------------------
def test_a_stale_write_at_a_flush_inside_a_use_case_is_a_logged_409(demo_clinic: Clinic) -> None:
    """Was: StaleDataError at the flush in update_patient went out as a 500, no audit row."""
    pid = patient_ids(demo_clinic)["ITB-1002"]
    with demo_clinic.uow(RN) as u:
        version = u.session.get(Patient, pid).version  # type: ignore[union-attr]
    first = demo_clinic.uow(RN)
    first.session.get(Patient, pid)  # read before the other write
    with demo_clinic.uow(RN) as u:
        services.update_patient(u, pid, version, {"weight_kg": 71})
    with pytest.raises(Conflict, match="changed by someone else"), first:
        services.update_patient(first, pid, version, {"weight_kg": 99})
    with demo_clinic.uow(RN) as u:
        assert u.session.get(Patient, pid).weight_kg == 71  # type: ignore[union-attr]
    rows = refusals(demo_clinic, action="update_patient")
    assert rows and rows[-1].after["code"] == "conflict"  # type: ignore[index]


def test_the_same_mrn_registered_at_the_same_moment_is_a_409(demo_clinic: Clinic) -> None:
    """Was: check, then insert: the loser's IntegrityError was a 500."""
    fields = {"mrn": "RACE-1", "name": "Twin", "birth_date": "1980-01-01", "origin": "spinal",
              "weight_kg": "70"}
    u = demo_clinic.uow(RN)
    done: list[bool] = []

    def meanwhile(session: object, *_: object) -> None:  # after the check, before the insert
        if not done:
            done.append(True)
            with demo_clinic.uow(RN) as other:
                services.register_patient(other, {**fields, "name": "First"})

    event.listen(u.session, "before_flush", meanwhile)
    with pytest.raises(RefusedOperation, match="already registered"), u:
        services.register_patient(u, fields)
    with demo_clinic.factory() as s:
        assert s.scalar(select(func.count()).select_from(Patient)
                        .where(Patient.mrn == "RACE-1")) == 1
    # Refused registrations are logged as what was tried (was: edit_patient).
    assert refusals(demo_clinic, action="register_patient")


# ---- the audit trail -------------------------------------------------------------------------
def audit_append_only_and_tamper_caught(clinic: Clinic) -> None:
    from openitb.store import audit

    with clinic.uow(SYSTEM) as u:
        accounts.create_user(u, "chain.one", "One", "nurse", "long-enough-pw")
        accounts.create_user(u, "chain.two", "Two", "nurse", "long-enough-pw")
    dialect = clinic.engine.dialect.name
    attacks = ["UPDATE audit_trail SET actor = 'x'", "DELETE FROM audit_trail"]
    cols = "(id, at, actor, role, action, entity, entity_id, outcome, prev_hash, row_hash)"
    vals = "(1, '2026-01-01 00:00:00', 'x', 'admin', 'x', 'x', '', 'ok', '', '')"
    if dialect == "sqlite":
        attacks += [f"INSERT OR REPLACE INTO audit_trail {cols} VALUES {vals}",
                    f"REPLACE INTO audit_trail {cols} VALUES {vals}"]
    else:
        attacks += ["TRUNCATE audit_trail",
                    f"INSERT INTO audit_trail {cols} VALUES {vals} ON CONFLICT (id) DO UPDATE "
                    "SET actor = 'x'"]
    for sql in attacks:
        with pytest.raises(DatabaseError), clinic.engine.begin() as conn:
            conn.execute(text(sql))
    with clinic.factory() as s:
        assert audit.verify(s).ok
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.id == 1)) != "x"


def test_audit_trail_refuses_replace_and_the_chain_verifies(empty_clinic: Clinic) -> None:
    """Was: INSERT OR REPLACE / REPLACE INTO replaced rows (REPLACE fires no delete trigger)."""
    audit_append_only_and_tamper_caught(empty_clinic)


def test_itb_audit_verify_names_the_first_row_changed_behind_the_application(
        demo_clinic: Clinic) -> None:
    from openitb.cli import app

    url = demo_clinic.engine.url.render_as_string(hide_password=False)
    path = url.split("///", 1)[1]
    ok = CliRunner().invoke(app, ["audit", "verify", "--database-url", url])
    assert ok.exit_code == 0 and "intact" in ok.output
    demo_clinic.engine.dispose()
    raw = sqlite3.connect(path)  # behind the application's back
    raw.execute("DROP TRIGGER audit_trail_no_update")
    raw.execute("UPDATE audit_trail SET after = '{\"username\": \"someone else\"}' WHERE id = 7")
    raw.commit()
    raw.close()
    bad = CliRunner().invoke(app, ["audit", "verify", "--database-url", url])
    assert bad.exit_code == 1 and "first broken row: 7" in bad.output
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_trail_no_delete")
    raw.execute("UPDATE audit_trail SET after = (SELECT after FROM audit_trail WHERE id = 6) "
                "WHERE id = 6")  # no-op; then remove a row in the middle
    raw.execute("DELETE FROM audit_trail WHERE id = 5")
    raw.commit()
    raw.close()
    bad = CliRunner().invoke(app, ["audit", "verify", "--database-url", url])
    assert bad.exit_code == 1 and "first broken row: 6" in bad.output


# ---- accounts --------------------------------------------------------------------------------
@pytest.mark.parametrize("patient_id", [99999, 2**70, "²", "9" * 5000, -1, "1e3", True])
def test_bad_patient_id_on_account_creation_names_the_field(demo_clinic: Clinic,
                                                            patient_id: object) -> None:
    """Was: 500 for 99999, 2**70, "²" and 5,000 digits."""
    c = TestClient(create_app(demo_clinic, demo=True))
    token = login(c, "admin")
    r = c.post("/api/v1/users", json={"username": "new.patient", "role": "patient",
                                      "patient_id": patient_id},
               headers={"X-CSRF-Token": token})
    assert 400 <= r.status_code < 500, r.text
    assert r.json().get("field") == "patient_id", r.text


def test_an_administrator_never_sets_or_learns_a_password(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    c = TestClient(create_app(demo_clinic, demo=True))
    token = login(c, "admin")
    h = {"X-CSRF-Token": token}
    # Was: an administrator made a patient-linked account with its own password, then read
    # the record.
    r = c.post("/api/v1/users", json={"username": "borrowed", "role": "patient",
                                      "patient_id": ids["ITB-1004"],
                                      "password": "admin-knows-it"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "password"
    r = c.post("/api/v1/users", json={"username": "borrowed", "role": "patient",
                                      "patient_id": ids["ITB-1004"]}, headers=h)
    assert r.status_code == 403 and "clinician" in r.json()["reason"]
    r = c.post("/api/v1/users", json={"username": "new.nurse", "role": "nurse"}, headers=h)
    assert r.status_code == 201 and "password" not in r.text.replace("/password/", "")
    link = r.json()["setup_link"]
    assert link.startswith("http://127.0.0.1:8000/password/")
    with demo_clinic.factory() as s:  # the token is kept only as its SHA-256
        token_part = link.rsplit("/", 1)[1]
        hashes = set(s.scalars(select(PasswordLink.token_hash)))
        assert hashlib.sha256(token_part.encode()).hexdigest() in hashes
        assert token_part not in hashes
    # The new user sets the password with the link, once.
    user = TestClient(create_app(demo_clinic, demo=True))
    h2 = {"X-CSRF-Token": csrf_of(user)}
    assert user.post(f"/api/v1/password/{token_part}", json={"new_password": "chosen-by-me"},
                     headers=h2).status_code == 200
    assert user.post(f"/api/v1/password/{token_part}", json={"new_password": "second-use!"},
                     headers=h2).status_code == 404
    assert api_login(user, "new.nurse", "chosen-by-me").status_code == 200


def test_a_patient_account_is_linked_by_the_patients_clinician(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1004"]
    nurse = TestClient(create_app(demo_clinic, demo=True))
    token = login(nurse, "nurse.kim")
    r = nurse.post(f"/api/v1/patients/{pid}/accounts", json={"username": "hiro"},
                   headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["patient_id"] == pid
    link = r.json()["setup_link"].rsplit("/", 1)[1]
    patient = TestClient(create_app(demo_clinic, demo=True))
    page = patient.get(f"/password/{link}")
    assert page.status_code == 200 and "hiro" in page.text
    r = patient.post(f"/password/{link}", data={"csrf_token": page_csrf(page.text),
                                                "new_password": "hiro-own-pw",
                                                "confirm_password": "hiro-own-pw"},
                     follow_redirects=False)
    assert r.status_code == 303
    assert api_login(patient, "hiro", "hiro-own-pw").status_code == 200
    assert patient.get(f"/api/v1/patients/{pid}").status_code == 200
    admin = TestClient(create_app(demo_clinic, demo=True))
    login(admin, "admin")
    assert admin.get(f"/api/v1/patients/{pid}").status_code == 403


def test_reset_link_expires_is_single_use_and_ends_sessions(demo_clinic: Clinic) -> None:
    admin = TestClient(create_app(demo_clinic, demo=True))
    h = {"X-CSRF-Token": login(admin, "admin")}
    with demo_clinic.factory() as s:
        uid = s.scalar(select(User.id).where(User.username == "nurse.kim"))
    old_session = TestClient(create_app(demo_clinic, demo=True))
    login(old_session, "nurse.kim")
    first = admin.post(f"/api/v1/users/{uid}/reset-link", headers=h).json()["reset_link"]
    second = admin.post(f"/api/v1/users/{uid}/reset-link", headers=h).json()["reset_link"]
    anon = TestClient(create_app(demo_clinic, demo=True))
    ha = {"X-CSRF-Token": csrf_of(anon)}
    t1, t2 = first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]
    assert anon.post(f"/api/v1/password/{t1}", json={"new_password": "new-password-1"},
                     headers=ha).status_code == 404  # the newer link replaced it
    with demo_clinic.engine.begin() as conn:  # the clock passes its expiry
        conn.execute(text("UPDATE password_links SET expires_at = '2000-01-01 00:00:00' "
                          "WHERE token_hash = :h"), {"h": hashlib.sha256(t2.encode()).hexdigest()})
    assert anon.post(f"/api/v1/password/{t2}", json={"new_password": "new-password-2"},
                     headers=ha).status_code == 404
    third = admin.post(f"/api/v1/users/{uid}/reset-link", headers=h).json()["reset_link"]
    t3 = third.rsplit("/", 1)[1]
    assert anon.post(f"/api/v1/password/{t3}", json={"new_password": "new-password-3"},
                     headers=ha).status_code == 200
    assert old_session.get("/api/v1/dashboard").status_code == 401  # sessions ended
    assert api_login(anon, "nurse.kim").status_code == 401
    assert api_login(anon, "nurse.kim", "new-password-3").status_code == 200


def test_password_change_needs_the_current_one_and_ends_other_sessions(
        demo_clinic: Clinic) -> None:
    a, b = (TestClient(create_app(demo_clinic, demo=True)) for _ in range(2))
    ta = login(a, "nurse.kim")
    login(b, "nurse.kim")
    feed = a.post("/api/v1/me/calendar-feed", headers={"X-CSRF-Token": ta}).json()["url"]
    feed_path = "/" + feed.split("/", 3)[3]
    assert b.get(feed_path).status_code == 200
    wrong = a.post("/api/v1/me/password", json={"current_password": "guess",
                                                "new_password": "brand-new-pw"},
                   headers={"X-CSRF-Token": ta})
    assert wrong.status_code == 403
    r = a.post("/api/v1/me/password", json={"current_password": DEMO_PASSWORD,
                                            "new_password": "brand-new-pw"},
               headers={"X-CSRF-Token": ta})
    assert r.status_code == 200
    assert a.get("/api/v1/dashboard").status_code == 200  # this session was renewed
    assert b.get("/api/v1/dashboard").status_code == 401  # the other one ended
    assert TestClient(create_app(demo_clinic, demo=True)).get(feed_path).status_code == 404


# ---- calendar feeds --------------------------------------------------------------------------
def test_feed_links_rotate_revoke_and_use_the_configured_base_url(demo_clinic: Clinic) -> None:
    """Was: the token never rotated, and the link was built from the request's Host header."""
    app = create_app(demo_clinic, demo=True, base_url="https://itb.clinic.example/")
    c = TestClient(app, base_url="http://evil.example")
    token = page_csrf(c.get("/login").text)
    c.post("/login", data={"username": "nurse.kim", "password": DEMO_PASSWORD,
                           "csrf_token": token, "next": "/"})
    csrf = page_csrf(c.get("/account").text)
    page = c.post("/calendar-feed", data={"csrf_token": csrf})
    url1 = re.search(r'value="(http[^"]+refills\.ics)"', page.text).group(1)  # type: ignore[union-attr]
    assert url1.startswith("https://itb.clinic.example/calendar/") and "evil" not in page.text
    page = c.post("/calendar-feed", data={"csrf_token": csrf})  # rotate
    url2 = re.search(r'value="(http[^"]+refills\.ics)"', page.text).group(1)  # type: ignore[union-attr]
    calendar = TestClient(app)
    path = lambda u: "/" + u.split("/", 3)[3]  # noqa: E731
    assert calendar.get(path(url1)).status_code == 404
    assert calendar.get(path(url2)).status_code == 200
    r = c.post("/calendar-feed/revoke", data={"csrf_token": csrf}, follow_redirects=True)
    assert "revoked" in r.text
    assert calendar.get(path(url2)).status_code == 404
    with pytest.raises(InvalidInput):
        create_app(demo_clinic, base_url="javascript:alert(1)")


# ---- inputs ----------------------------------------------------------------------------------
def test_request_bodies_are_bounded_before_parsing(demo_clinic: Clinic) -> None:
    """Was: a 100 MB JSON body to the login endpoint was parsed in full."""
    c = TestClient(create_app(demo_clinic, demo=True, max_body_bytes=64 * 1024))
    token = csrf_of(c)
    big = b'{"username": "' + b"a" * 200_000 + b'", "password": "x"}'
    r = c.post("/api/v1/auth/login", content=big, headers={"X-CSRF-Token": token,
                                                            "content-type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(100):
            yield b"a" * 4096

    r = c.post("/login", content=chunks(), headers={"content-type":
                                                    "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_a_huge_form_value_is_bounded_in_the_audit_row_and_the_echo(demo_clinic: Clinic) -> None:
    """Was: a 1 MB value was stored verbatim in the refusal row and echoed back."""
    c = TestClient(create_app(demo_clinic, demo=True))
    token = page_csrf(c.get("/login").text)
    c.post("/login", data={"username": "nurse.kim", "password": DEMO_PASSWORD,
                           "csrf_token": token, "next": "/"})
    csrf = page_csrf(c.get("/patients/new").text)
    r = c.post("/patients/new", data={"csrf_token": csrf, "mrn": "BIG-1", "name": "Big",
                                      "birth_date": "1980-01-01", "origin": "spinal",
                                      "weight_kg": "9" * 1_000_000})
    assert r.status_code == 422 and len(r.text) < 50_000 and "1000000 characters" in r.text
    row = refusals(demo_clinic, action="register_patient")[-1]
    assert row.after["field"] == "weight_kg" and len(str(row.after)) < 1000  # type: ignore[index]


def test_json_api_checks_csrf_before_the_body(demo_clinic: Clinic) -> None:
    """Was: 422 (body invalid) before 403 (no CSRF token)."""
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "nurse.kim")
    r = c.post("/api/v1/patients", content=b"{not json", headers={"content-type":
                                                                   "application/json"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = c.post("/api/v1/patients", json={"mrn": 5})
    assert r.status_code == 403


def test_the_url_cannot_put_text_in_an_alert(demo_clinic: Clinic) -> None:
    """Was: /patients/2?error=<text> showed any text as an alert."""
    pid = patient_ids(demo_clinic)["ITB-1002"]
    c = TestClient(create_app(demo_clinic, demo=True))
    token = page_csrf(c.get("/login").text)
    c.post("/login", data={"username": "nurse.kim", "password": DEMO_PASSWORD,
                           "csrf_token": token, "next": "/"})
    page = c.get(f"/patients/{pid}?error=Call+0800+FAKE+now")
    assert page.status_code == 200 and "FAKE" not in page.text


def test_search_matches_percent_and_underscore_as_typed(demo_clinic: Clinic) -> None:
    """Was: searching % listed everyone."""
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "nurse.kim")
    assert c.get("/api/v1/patients", params={"q": "%"}).json() == []
    assert c.get("/api/v1/patients", params={"q": "_"}).json() == []
    assert len(c.get("/api/v1/patients", params={"q": "ITB-100"}).json()) == 9


def test_migrated_database_file_keeps_its_triggers(tmp_path: Path) -> None:
    from openitb.store.db import make_engine

    Clinic(make_engine(f"sqlite:///{tmp_path / 't.db'}")).engine.dispose()
    raw = sqlite3.connect(tmp_path / "t.db")
    names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    raw.close()
    assert {"audit_trail_no_update", "audit_trail_no_delete", "audit_trail_no_replace"} <= names
