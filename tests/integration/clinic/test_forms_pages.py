"""Issue 16, forms that keep what was typed (served pages and the JSON API on a demo clinic):
the screening keeps every entry and names each error beside its field, Modified Ashworth
grades as clinics write them (1+), error sentences in words."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from openitb.clinic.demo import DEMO_PASSWORD, patient_ids
from openitb.clinic.facade import Clinic
from openitb.errors import InvalidInput
from openitb.therapy.screening import MAS_GRADES, parse_mas
from openitb.web.app import create_app

from .conftest import login, page_csrf


def form_client(clinic: Clinic, username: str) -> TestClient:
    c = TestClient(create_app(clinic, demo=True))
    t = page_csrf(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": t, "username": username,
                               "password": DEMO_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    return c


def test_mas_grades_as_written() -> None:
    assert [parse_mas(g, "x") for g in ("0", "1", "1+", " 1 + ", "1.5", "2", "3", "4")] == [
        0.0, 1.0, 1.5, 1.5, 1.5, 2.0, 3.0, 4.0]
    assert parse_mas(3, "x") == 3.0 and parse_mas(1.5, "x") == 1.5
    for bad in ("2+", "2.5", "5", "-1", "x", "", None, True, 0.7):
        try:
            parse_mas(bad, "f")
        except InvalidInput as exc:
            assert exc.field == "f" and "0, 1, 1+, 2, 3 or 4" in exc.allowed
        else:
            raise AssertionError(f"{bad!r} accepted")


@given(st.one_of(st.text(max_size=6), st.floats(allow_nan=True), st.integers(-5, 10)))
def test_mas_parser_returns_only_the_six_grades(raw: object) -> None:
    try:
        value = parse_mas(raw, "f")
    except InvalidInput:
        return
    assert value in MAS_GRADES.values()


def test_screening_form_keeps_every_entry_and_names_each_error(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1010"]  # Giulia Rossi: screening in progress
    c = form_client(demo_clinic, "dr.rivera")
    t = page_csrf(c.get(f"/patients/{pid}/screening").text)
    r = c.post(f"/patients/{pid}/screening", data={
        "csrf_token": t, "given_0": "on", "effect_0": "5",
        "before_0_hip_adductors": "3", "after_0_hip_adductors": "1+",
        "before_0_knee_extensors": "2", "after_0_knee_extensors": "x",
        "before_0_elbow_flexors": "2"})
    assert r.status_code == 422
    page = html.unescape(r.text)
    for name, value in (("effect_0", "5"), ("before_0_hip_adductors", "3"),
                        ("after_0_hip_adductors", "1+"), ("before_0_knee_extensors", "2"),
                        ("after_0_knee_extensors", "x"), ("before_0_elbow_flexors", "2")):
        assert f'name="{name}"' in page and f'value="{value}"' in page, name
    assert 'id="after_0_knee_extensors-error"' in page
    assert 'aria-describedby="after_0_knee_extensors-error"' in page
    assert ("Knee extensors, MAS after the 50 mcg bolus: \u201cx\u201d is not accepted; "
            "allowed: a Modified Ashworth grade: 0, 1, 1+, 2, 3 or 4.") in page
    assert "Elbow flexors, MAS after the 50 mcg bolus is required" in page
    assert 'href="#after_0_elbow_flexors"' in page  # the summary links to the field
    assert "1+" not in page.split("error-summary")[1].split("</section>")[0]  # 1+ is no error
    assert "doses[0]" not in page and "got {}" not in page and "Hip adductors" in page
    assert "hip_adductors</th>" not in page  # muscle groups by label


def test_screening_records_1_plus(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1010"]
    c = form_client(demo_clinic, "dr.rivera")
    t = page_csrf(c.get(f"/patients/{pid}/screening").text)
    r = c.post(f"/patients/{pid}/screening", data={
        "csrf_token": t, "given_0": "on", "effect_0": "5",
        "before_0_hip_adductors": "3", "after_0_hip_adductors": "1+",
        "before_0_knee_extensors": "3", "after_0_knee_extensors": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    record = c.get(f"/api/v1/patients/{pid}").json()
    dose = record["screenings"][-1]["doses"][0]
    assert dose["mas_after"] == {"hip_adductors": 1.5, "knee_extensors": 1.0}


def test_api_accepts_1_plus_and_names_a_bad_grade(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1010"]
    c = TestClient(create_app(demo_clinic, demo=True))
    t = login(c, "dr.rivera")
    dose = {"dose_mcg": 50, "effect_hours": 5, "mas_before": {"hip_adductors": "3"},
            "mas_after": {"hip_adductors": "1+"}}
    r = c.post(f"/api/v1/patients/{pid}/screenings", json={"doses": [dose]},
               headers={"X-CSRF-Token": t})
    assert r.status_code == 201, r.text
    assert r.json()["doses"][0]["mas_after"] == {"hip_adductors": 1.5}
    bad = {**dose, "mas_after": {"hip_adductors": "2.5"}}
    r = c.post(f"/api/v1/patients/{pid}/screenings", json={"doses": [bad]},
               headers={"X-CSRF-Token": t})
    assert r.status_code == 422 and r.json()["field"] == "doses[0].mas_after.hip_adductors"


def test_error_sentences_are_words() -> None:
    from openitb.clinic.labels import field_label
    from openitb.web.pages import error_text

    assert error_text(InvalidInput("note", "", "at least 3 characters")) == (
        "Note is required (at least 3 characters).")
    assert field_label("doses[0].mas_after.hip_adductors") == (
        "Screening doses 1, MAS after, Hip adductors")
    assert error_text(InvalidInput("withdrawn_ml", "abc", "a number from 0 to 20 mL")) == (
        "Volume withdrawn: \u201cabc\u201d is not accepted; allowed: a number from 0 to 20 mL.")


def test_acknowledge_without_note_says_it_in_words(demo_clinic: Clinic) -> None:
    c = form_client(demo_clinic, "nurse.kim")
    inbox = c.get("/alarms").text
    t = page_csrf(inbox)
    alarm = inbox.split('action="/alarms/')[1].split("/ack")[0]
    r = c.post(f"/alarms/{alarm}/ack", data={"csrf_token": t, "note": "  "},
               headers={"HX-Request": "true"})
    text = html.unescape(r.text)
    assert "Note is required (at least 3 characters, saying what was done)." in text
    assert "got ''" not in text


def test_a_ticked_dose_without_grades_is_named_in_words(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1010"]
    c = form_client(demo_clinic, "dr.rivera")
    t = page_csrf(c.get(f"/patients/{pid}/screening").text)
    r = c.post(f"/patients/{pid}/screening", data={"csrf_token": t, "given_0": "on",
                                                   "effect_0": "4"})
    page = html.unescape(r.text)
    assert r.status_code == 422
    assert ("A grade for the 50 mcg bolus is required (at least one muscle group, before and "
            "after).") in page
    assert "{'hip_flexors'" not in page  # no code in the sentence
    assert 'value="4"' in page
