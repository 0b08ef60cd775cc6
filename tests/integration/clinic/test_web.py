"""The web layer over HTTP (in-process): sessions, CSRF, the refill and programming pages, the
API's conflict answer and its OpenAPI document."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from openitb.clinic.demo import DEMO_PASSWORD, patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM
from openitb.store.models import AuditEntry
from openitb.web.app import create_app
from openitb.web.security import COOKIE

from .conftest import csrf_of, login, page_csrf

TOKEN = re.compile(r'name="review_token" id="review_token" value="([0-9a-f.]+)"')


def token_in(html: str) -> str:
    """The review token of the review shown on a page (the confirm must send it)."""
    m = TOKEN.search(html)
    assert m, "no review token on the page"
    return m.group(1)


def client_for(clinic: Clinic) -> TestClient:
    return TestClient(create_app(clinic, demo=True))


def form_login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> None:
    token = page_csrf(client.get("/login").text)
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf_token": token, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_cookie_flags_and_login_logout(demo_clinic: Clinic) -> None:
    c = client_for(demo_clinic)
    r = c.get("/login")
    cookie = r.headers["set-cookie"]
    assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert c.get("/", follow_redirects=False).headers["location"].startswith("/login")
    bad = c.post("/login", data={"username": "nurse.kim", "password": "nope",
                                 "csrf_token": page_csrf(r.text)})
    assert bad.status_code == 401 and "wrong username or password" in bad.text
    form_login(c, "nurse.kim")
    assert "Dashboard" in c.get("/").text
    token = page_csrf(c.get("/").text)
    c.post("/logout", data={"csrf_token": token})
    assert c.get("/", follow_redirects=False).status_code == 303


def test_csrf_required_on_every_unsafe_request(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    c = client_for(demo_clinic)
    # The login form itself.
    r = c.post("/login", data={"username": "nurse.kim", "password": DEMO_PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.text
    form_login(c, "nurse.kim")
    pid = ids["ITB-1004"]
    for url, data in ((f"/patients/{pid}/refill", {"withdrawn_ml": "1", "volume_ml": "20",
                                                   "concentration": "500"}),
                      ("/clock", {"step": "day"}),
                      (f"/patients/{pid}/checklist", {}),
                      ("/logout", {})):
        assert c.post(url, data=data).status_code == 403, url
        assert c.post(url, data={**data, "csrf_token": "forged"}).status_code == 403, url
    api = c.post("/api/v1/clock/advance", json={"step": "day"})
    assert api.status_code == 403 and api.json()["error"] == "csrf"
    with demo_clinic.uow(SYSTEM) as u:
        logged = u.session.scalars(select(AuditEntry).where(
            AuditEntry.outcome == "refused")).all()
        assert sum(1 for e in logged if e.after and e.after.get("code") == "csrf") >= 9


def test_nurse_refill_with_concentration_change_updates_dashboard(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    pid = ids["ITB-1004"]  # Hiro Tanaka: refill due in 2 days
    c = client_for(demo_clinic)
    form_login(c, "nurse.kim")
    assert "Hiro Tanaka" in c.get("/").text
    page = c.get(f"/patients/{pid}/refill").text
    expected = float(re.search(r'id="expected">([\d.]+) mL', page).group(1))  # type: ignore[union-attr]
    data = {"csrf_token": page_csrf(page), "withdrawn_ml": f"{expected - 0.3:.1f}",
            "volume_ml": "40", "concentration": "2000", "note": ""}
    review = c.post(f"/patients/{pid}/refill", data=data)
    assert review.status_code == 200
    assert 'id="bridge"' in review.text and "bridge bolus" in review.text
    done = c.post(f"/patients/{pid}/refill", data={**data, "confirmed": "on",
                                                   "review_token": token_in(review.text)},
                  follow_redirects=False)
    assert done.status_code == 303
    patient = c.get(done.headers["location"]).text
    assert "2000 mcg/mL" in patient and "bridge bolus" in patient
    dash = c.get("/").text
    assert not re.search(r"Hiro Tanaka</a></td>\s*<td>refill", dash)


def test_physician_override_nurse_refused(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1006"]  # Leo Moreau, cerebral, titrating at 100
    nurse = client_for(demo_clinic)
    form_login(nurse, "nurse.kim")
    t = page_csrf(nurse.get(f"/patients/{pid}/program").text)
    data = {"csrf_token": t, "mode": "continuous", "dose_per_day": "130",
            "context": "titration", "confirmed": "on", "override_reason": "nurse tries"}
    seen = nurse.post(f"/patients/{pid}/program", data={**data, "confirmed": ""})
    r = nurse.post(f"/patients/{pid}/program", data={**data,
                                                     "review_token": token_in(seen.text)})
    assert r.status_code == 422 and "who may: physician" in r.text
    doc = client_for(demo_clinic)
    form_login(doc, "dr.rivera")
    t = page_csrf(doc.get(f"/patients/{pid}/program").text)
    review = doc.post(f"/patients/{pid}/program", data={**data, "csrf_token": t,
                                                         "confirmed": "", "override_reason": ""})
    assert "g-above_recommended" in review.text and 'id="review"' in review.text
    ok = doc.post(f"/patients/{pid}/program", data={**data, "csrf_token": t,
                                                     "override_reason": "rebound spasms at night",
                                                     "review_token": token_in(review.text)},
                  follow_redirects=False)
    assert ok.status_code == 303
    assert "rebound spasms at night" in doc.get(f"/patients/{pid}").text


def test_api_conflict_is_409_with_a_clear_message(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1001"]
    a, b = client_for(demo_clinic), client_for(demo_clinic)
    ta, tb = login(a, "nurse.kim"), login(b, "dr.rivera")
    version = a.get(f"/api/v1/patients/{pid}").json()["patient"]["version"]
    r1 = a.patch(f"/api/v1/patients/{pid}", json={"version": version, "weight_kg": 80},
                 headers={"X-CSRF-Token": ta})
    assert r1.status_code == 200 and r1.json()["version"] == version + 1
    r2 = b.patch(f"/api/v1/patients/{pid}", json={"version": version, "weight_kg": 90},
                 headers={"X-CSRF-Token": tb})
    assert r2.status_code == 409
    assert "changed by someone else" in r2.json()["reason"]
    assert a.get(f"/api/v1/patients/{pid}").json()["patient"]["weight_kg"] == 80


def test_api_invalid_input_names_the_field(demo_clinic: Clinic) -> None:
    c = client_for(demo_clinic)
    t = login(c, "nurse.kim")
    r = c.post("/api/v1/patients", headers={"X-CSRF-Token": t}, json={
        "mrn": "X-1", "name": "A", "birth_date": "1990-01-01", "origin": "spinal",
        "weight_kg": 3})
    assert r.status_code == 422 and r.json()["field"] == "weight_kg"


def test_malformed_requests_name_the_field(demo_clinic: Clinic) -> None:
    c = client_for(demo_clinic)
    t = login(c, "nurse.kim")
    r = c.post("/api/v1/alarms/1/acknowledge", headers={"X-CSRF-Token": t}, json={})
    assert r.status_code == 422 and r.json()["field"] == "note"
    r = c.get("/api/v1/patients/abc")
    assert r.status_code == 422 and r.json()["field"] == "patient_id" and r.json()["given"] == "abc"
    page = c.get("/?page=two")
    assert page.status_code == 422 and "Page: \u201ctwo\u201d is not accepted" in page.text
    assert "Content-Security-Policy" in page.headers and page.headers["X-Frame-Options"] == "DENY"


def test_openapi_document(demo_clinic: Clinic) -> None:
    doc = client_for(demo_clinic).get("/api/v1/openapi.json").json()
    assert "/api/v1/patients/{patient_id}/refill" in doc["paths"]
    assert all(not p.startswith("/patients") for p in doc["paths"])


def test_patient_view_and_static_htmx(demo_clinic: Clinic) -> None:
    c = client_for(demo_clinic)
    form_login(c, "mia")
    assert c.get("/", follow_redirects=False).headers["location"] == "/me"
    me = c.get("/me").text
    assert "Refill by" in me and "withdrawal" in me and "Emergency contacts" in me
    assert "Hiro Tanaka" not in me
    js = c.get("/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:200]


def test_csrf_token_endpoint_is_per_session(demo_clinic: Clinic) -> None:
    a, b = client_for(demo_clinic), client_for(demo_clinic)
    assert csrf_of(a) != csrf_of(b)


def test_register_screen_and_implant_through_the_pages(demo_clinic: Clinic) -> None:
    doc = client_for(demo_clinic)
    form_login(doc, "dr.rivera")
    t = page_csrf(doc.get("/patients/new").text)
    bad = doc.post("/patients/new", data={"csrf_token": t, "mrn": "W-1", "name": "Web Patient",
                                          "birth_date": "1985-02-03", "origin": "spinal",
                                          "weight_kg": "abc"})
    assert bad.status_code == 422 and "weight_kg" in bad.text and 'value="Web Patient"' in bad.text
    r = doc.post("/patients/new", data={"csrf_token": t, "mrn": "W-1", "name": "Web Patient",
                                        "birth_date": "1985-02-03", "origin": "spinal",
                                        "weight_kg": "68", "injury_level": "T3"},
                 follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    page = doc.get(url).text
    assert "Higher withdrawal risk" in page and "T3" in page
    screening = {"csrf_token": t, "given_0": "on", "effect_0": "10",
                 "before_0_hip_adductors": "3", "after_0_hip_adductors": "1",
                 "before_0_knee_extensors": "2", "after_0_knee_extensors": "1"}
    r = doc.post(f"{url}/screening", data=screening, follow_redirects=False)
    assert r.status_code == 303
    page = doc.get(url).text
    assert "screened" in page and "first pump dose 50 mcg/day" in page  # effect > 8 h
    form = {"csrf_token": t, "profile": "itb-20", "serial": "SN-WEB-1",
            "catheter_length_cm": "85", "tip_level": "T9", "volume_ml": "20",
            "concentration": "500", "dose_per_day": ""}
    seen = doc.post(f"{url}/implant", data=form)
    assert seen.status_code == 200 and 'id="review"' in seen.text  # a review step first
    assert "priming_bolus" in seen.text and "g-below_recommended" in seen.text
    r = doc.post(f"{url}/implant", data={**form, "confirmed": "on",
                                         "override_reason": "the screening's first dose",
                                         "review_token": token_in(seen.text)},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    page = doc.get(url).text
    assert 'data-stage="implanted">Pump implanted' in page and "50 mcg/day at 500 mcg/mL" in page
    assert "priming" in page
    # A stale edit form: 409 with the clear message, and nothing saved.
    version = re.search(r'name="version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    ok = doc.post(f"{url}/edit", data={"csrf_token": t, "version": version, "name": "Web Patient",
                                       "weight_kg": "69", "risk_high_injury": "on"},
                  follow_redirects=False)
    assert ok.status_code == 303
    stale = doc.post(f"{url}/edit", data={"csrf_token": t, "version": version,
                                          "name": "Web Patient", "weight_kg": "99"})
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    assert "99" not in re.search(r'id="e-weight"[^>]*>', doc.get(url).text).group(0)  # type: ignore[union-attr]


def test_sign_in_is_throttled_per_address_with_growing_delays(demo_clinic: Clinic) -> None:
    """After the free failures an address must wait, growing with each failure; the wait is
    refused (429, counted) without the password being checked."""
    now = [1000.0]
    app = create_app(demo_clinic, demo=True)
    from openitb.web.throttle import ADDRESS_FREE, LoginThrottle

    app.state.login_throttle = LoginThrottle(clock=lambda: now[0])
    c = TestClient(app)
    token = csrf_of(c)

    def attempt(password: str) -> int:
        return c.post("/api/v1/auth/login", json={"username": "nurse.kim", "password": password},
                      headers={"X-CSRF-Token": token}).status_code

    for _ in range(ADDRESS_FREE):
        assert attempt("guess") == 401
    waits = []
    for _ in range(4):
        r = c.post("/api/v1/auth/login", json={"username": "nurse.kim", "password": DEMO_PASSWORD},
                   headers={"X-CSRF-Token": token})
        assert r.status_code == 429 and "too many failed sign-ins" in r.json()["reason"]
        waits.append(int(r.json()["reason"].split("try again in ")[1].split()[0]))
        now[0] += waits[-1]  # wait it out, then fail again
        assert attempt("guess") == 401
    assert waits == sorted(waits) and waits[-1] > waits[0]  # the delay grows
    with demo_clinic.uow(SYSTEM) as u:
        codes = [e.after.get("code") for e in u.session.scalars(select(AuditEntry).where(
            AuditEntry.actor == "nurse.kim", AuditEntry.outcome == "refused")) if e.after]
    assert codes.count("unauthenticated") == ADDRESS_FREE + 4  # guesses at a real account
    assert "throttled" not in codes  # counted, not one row each


def test_throttle_window_passes() -> None:
    from openitb.web.throttle import ADDRESS_FREE, WINDOW_S, LoginThrottle

    now = [0.0]
    t = LoginThrottle(clock=lambda: now[0])
    for _ in range(ADDRESS_FREE + 1):
        t.failed("a", "1.2.3.4")
    assert t.wait_seconds("a", "1.2.3.4") > 0
    assert t.wait_seconds("a", "5.6.7.8") == 0  # another address, the same account
    now[0] = WINDOW_S + 1
    assert t.wait_seconds("a", "1.2.3.4") == 0


def test_sign_out_ends_every_session_of_the_user(demo_clinic: Clinic) -> None:
    a, b = client_for(demo_clinic), client_for(demo_clinic)
    login(a, "nurse.kim")
    tb = login(b, "nurse.kim")
    stolen = dict(a.cookies)
    assert a.get("/api/v1/dashboard").status_code == 200
    assert b.post("/api/v1/auth/logout", headers={"X-CSRF-Token": tb}).status_code == 200
    assert a.get("/api/v1/dashboard").status_code == 401  # the other session ended too
    replay = client_for(demo_clinic)
    replay.cookies.update(stolen)
    assert replay.get("/api/v1/dashboard").status_code == 401
    login(a, "nurse.kim")
    assert a.get("/api/v1/dashboard").status_code == 200


def test_personal_calendar_feed_by_token(demo_clinic: Clinic) -> None:
    from icalendar import Calendar

    c = client_for(demo_clinic)
    form_login(c, "nurse.kim")
    page = c.post("/calendar-feed", data={"csrf_token": page_csrf(c.get("/").text)})
    url = re.search(r'value="(http[^"]+refills\.ics)"', page.text).group(1)  # type: ignore[union-attr]
    path = url.split("://", 1)[1].split("/", 1)[1]
    anonymous = client_for(demo_clinic)  # a calendar client: no cookie
    r = anonymous.get("/" + path)
    assert r.status_code == 200
    summaries = [str(e.get("summary")) for e in Calendar.from_ical(r.content).walk("VEVENT")]
    assert "ITB refill: Hiro Tanaka" in summaries
    assert anonymous.get("/calendar/wrong/refills.ics").status_code == 404


def test_replace_the_pump_near_eri_through_the_page(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1001"]  # Helmut Weber: ERI within weeks
    doc = client_for(demo_clinic)
    form_login(doc, "dr.rivera")
    assert re.search(r"Helmut Weber</a></td>\s*<td>pump SN-\S+ reaches ERI", doc.get("/").text)
    form_page = doc.get(f"/patients/{pid}/replace").text
    # the concentration is a choice from the drug library, not free text
    assert '<select id="r-conc" name="concentration">' in form_page
    t = page_csrf(form_page)
    form = {"csrf_token": t, "serial": "SN-NEW-1", "profile": "itb-40", "volume_ml": "40",
            "concentration": "2000"}
    seen = doc.post(f"/patients/{pid}/replace", data=form)
    assert seen.status_code == 200 and 'id="review"' in seen.text  # a review step first
    assert "explant" in seen.text and "priming_bolus" in seen.text
    assert "serial SN-NEW-1" not in doc.get(f"/patients/{pid}").text  # nothing written yet
    r = doc.post(f"/patients/{pid}/replace", data={**form, "confirmed": "on",
                                                   "review_token": token_in(seen.text)},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    page = doc.get(f"/patients/{pid}").text
    assert "serial SN-NEW-1" in page and "catheter retained" in page
    assert "reaches ERI" not in doc.get("/").text


def test_api_programs_any_mode_from_the_prescription_schema(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1003"]  # Mia: 300 mcg/day continuous
    c = client_for(demo_clinic)
    t = login(c, "dr.rivera")
    doc = {"mode": "periodic_bolus", "dose": "240 mcg/day",
           "boluses": [{"at": "07:00", "bolus": "60 mcg", "duration": "1 h"}]}
    r = c.post(f"/api/v1/patients/{pid}/program/review", headers={"X-CSRF-Token": t},
               json={"prescription": doc, "context": "maintenance"})
    assert r.status_code == 200, r.text
    assert r.json()["classification"] == "within"
    assert any(row["field"] == "mode" and row["proposed"] == "periodic_bolus"
               for row in r.json()["rows"])
    bad = c.post(f"/api/v1/patients/{pid}/program/review", headers={"X-CSRF-Token": t},
                 json={"prescription": {"mode": "hourly"}})
    assert bad.status_code == 422 and bad.json()["field"] == "mode"


def test_htmx_acknowledge_swaps_the_item(demo_clinic: Clinic) -> None:
    from openitb.store.models import Alarm

    with demo_clinic.uow(SYSTEM) as u:
        alarm_id = u.session.scalars(select(Alarm.id).where(
            Alarm.acknowledged_at.is_(None))).first()
    c = client_for(demo_clinic)
    form_login(c, "nurse.kim")
    t = page_csrf(c.get("/alarms").text)
    hx = {"HX-Request": "true", "X-CSRF-Token": t}
    bad = c.post(f"/alarms/{alarm_id}/ack", data={"note": ""}, headers=hx)
    assert bad.status_code == 200 and 'role="alert"' in bad.text and "note" in bad.text
    assert bad.text.lstrip().startswith(f'<li id="alarm-{alarm_id}"')
    ok = c.post(f"/alarms/{alarm_id}/ack", data={"note": "called, all well"}, headers=hx)
    assert "Acknowledged by Nurse Jae Kim" in ok.text and "<form" not in ok.text


def test_patient_page_and_api_show_the_model_prediction(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1006"]  # Leo Moreau, cerebral, titrating at 100
    doc = client_for(demo_clinic)
    form_login(doc, "dr.rivera")
    page = doc.get(f"/patients/{pid}").text
    assert 'id="predicted-effect"' in page
    assert "not for this patient" in page and "child_cp" in page
    before = doc.get(f"/api/v1/patients/{pid}").json()["predicted_effect"]
    assert before["model_patient"] == "child_cp" and before["mas_drop"] > 0
    assert before["dose_per_day"] == doc.get(f"/api/v1/patients/{pid}").json()["pump"][
        "dose_per_day"]
    t = page_csrf(doc.get(f"/patients/{pid}/program").text)
    form = {"csrf_token": t, "mode": "continuous",
            "dose_per_day": str(before["dose_per_day"] * 1.1), "context": "titration"}
    seen = doc.post(f"/patients/{pid}/program", data=form)
    r = doc.post(f"/patients/{pid}/program", data={
        **form, "confirmed": "on", "review_token": token_in(seen.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    after = doc.get(f"/api/v1/patients/{pid}").json()["predicted_effect"]
    assert after["dose_per_day"] > before["dose_per_day"]
    assert after["mas_drop"] > before["mas_drop"]
    assert after["csf_lumbar_ng_per_ml"] > before["csf_lumbar_ng_per_ml"]
    assert after["mas"] < before["mas"]
    # a patient without a pump has no prediction
    cand = patient_ids(demo_clinic)
    without = [i for i in cand.values()
               if doc.get(f"/api/v1/patients/{i}").json()["pump"] is None]
    assert without and doc.get(f"/api/v1/patients/{without[0]}").json()["predicted_effect"] is None


def test_the_header_names_people_not_accounts(demo_clinic: Clinic) -> None:
    """Issue 16, item 9: a caregiver was shown as "leo.carer (patient)"."""
    for username, shown in (("leo.carer", "Claire Moreau, caregiver of Leo Moreau"),
                            ("nurse.kim", "Nurse Jae Kim, nurse")):
        client = client_for(demo_clinic)
        form_login(client, username)
        html = client.get("/me" if username == "leo.carer" else "/").text
        header = html.split("</header>")[0]
        assert f'<a href="/account">{shown}</a>' in header, header[-400:]
        assert f"{username} (" not in header


def test_start_up_objects_are_frozen_out_of_the_collector(demo_clinic: Clinic) -> None:
    """A full collection walking the start-up heap stalled one dashboard request in a hundred
    by ~100 ms (bench_clinic p99); the served app freezes what exists at start-up."""
    import gc

    gc.unfreeze()
    with client_for(demo_clinic) as client:  # runs the lifespan
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
    gc.unfreeze()
