"""FHIR, iCalendar and PDF documents: each parses back with its own library and carries the
key fields."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from fhir.resources.bundle import Bundle
from icalendar import Calendar
from pypdf import PdfReader

from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.web.app import create_app

from .conftest import login


def test_fhir_bundle_parses_back(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1004"]  # Tanaka: C6 injury, earlier withdrawal
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "dr.rivera")
    r = c.get(f"/api/v1/patients/{pid}/fhir")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate_json(r.text)
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    for kind in ("Patient", "Device", "MedicationRequest", "Procedure", "Observation", "Flag"):
        assert kind in kinds, kind
    req = next(e.resource for e in bundle.entry
               if e.resource.get_resource_type() == "MedicationRequest")
    rate = req.dosageInstruction[0].doseAndRate[0].rateQuantity
    assert float(rate.value) == 600 and rate.code == "ug/d"


def test_ical_feed_parses(demo_clinic: Clinic) -> None:
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "nurse.kim")
    r = c.get("/api/v1/calendar/refills.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(r.content)
    events = [e for e in cal.walk("VEVENT")]
    assert len(events) >= 7
    names = " ".join(str(e.get("summary")) for e in events)
    live = [e for e in events if str(e.get("status")) != "CANCELLED"]
    assert "Hiro Tanaka" in names and live and all(e.walk("VALARM") for e in live)


def test_pdfs_open_and_contain_the_key_fields(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1003"]
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "mia")
    for url in (f"/patients/{pid}/wallet-card.pdf", f"/patients/{pid}/summary.pdf"):
        r = c.get(url)
        assert r.status_code == 200 and r.content.startswith(b"%PDF")
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
        for needle in ("Mia Lindqvist", "itb-20", "500 mcg/mL", "300 mcg/day", "Next refill",
                       "on-call", "itching", "drowsiness"):
            assert needle in text, (url, needle)
    other = patient_ids(demo_clinic)["ITB-1004"]
    assert c.get(f"/patients/{other}/wallet-card.pdf").status_code == 403


def test_patient_adds_own_refill_to_calendar(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "mia")
    r = c.get(f"/patients/{ids['ITB-1003']}/refill.ics")
    assert r.status_code == 200
    events = [e for e in Calendar.from_ical(r.content).walk("VEVENT")
              if str(e.get("status")) == "CONFIRMED"]  # her last refill cancelled the one before
    assert len(events) == 1 and "Mia Lindqvist" in str(events[0].get("summary"))
    assert str(events[0].decoded("dtstart")) == "2026-01-15"
    assert c.get(f"/patients/{ids['ITB-1004']}/refill.ics").status_code == 403
