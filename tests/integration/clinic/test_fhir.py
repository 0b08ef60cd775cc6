"""FHIR: every demo Bundle validates as R5 (fhir.resources) and, asked for as R4, as R4 (the R4B
models and FHIR.js); every reference resolves by the Bundle rules; standard codes; the FHIR face
with its role rules; a transaction Bundle posted into an empty clinic reads back the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openitb.clinic import queries, services
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor
from openitb.interop import fhir
from openitb.interop import terminology as t
from openitb.interop.fhir_import import import_transaction
from openitb.interop.fhir_resolve import resolve, unresolved
from openitb.web.app import create_app

from .conftest import login

FHIRJS = Path(__file__).parents[2] / "fhirjs"
DOCTOR = Actor("dr.rivera", "physician", 1)


def _bundles(c: TestClient, pids: list[int], version: str, kind: str) -> list[dict[str, Any]]:
    out = []
    for pid in pids:
        r = c.get(f"/api/v1/patients/{pid}/fhir", params={"type": kind},
                  headers={"Accept": f"application/fhir+json; fhirVersion={version}"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == f"application/fhir+json; fhirVersion={version}"
        out.append(r.json())
    return out


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_every_demo_bundle_validates_as_r5_and_as_r4(demo_clinic: Clinic) -> None:
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "dr.rivera")
    pids = sorted(patient_ids(demo_clinic).values())
    assert len(pids) == 12
    for kind in ("collection", "transaction"):
        for b in _bundles(c, pids, "5.0", kind):
            fhir.validate(b, fhir.R5)
            assert b["type"] == kind
        for b in _bundles(c, pids, "4.0", kind):
            fhir.validate(b, fhir.R4)
            if _resources(b, "Device"):  # R4 is really R4: the R5 models refuse it
                with pytest.raises(ValueError):
                    fhir.validate(b, fhir.R5)
    # the default is R5, stated in the content type; the query parameter works for browsers
    r = c.get(f"/api/v1/patients/{pids[0]}/fhir")
    assert r.headers["content-type"] == "application/fhir+json; fhirVersion=5.0"
    r = c.get(f"/api/v1/patients/{pids[0]}/fhir?fhirVersion=4.0")
    assert r.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    r = c.get(f"/api/v1/patients/{pids[0]}/fhir",
              headers={"Accept": "application/fhir+json; fhirVersion=3.0"})
    assert r.status_code == 406 and r.json()["resourceType"] == "OperationOutcome"


def test_r4_bundles_validate_with_fhirjs(demo_clinic: Clinic) -> None:
    """FHIR.js (npm 'fhir', its R4 definitions), installed by .ci/run and `make fhirjs`."""
    node = shutil.which("node")
    if node is None or not (FHIRJS / "node_modules" / "fhir").is_dir():
        if os.environ.get("OPENITB_REQUIRE_ALL") == "1":
            pytest.fail("FHIR.js is not installed: run `make fhirjs`")
        pytest.skip("FHIR.js is not installed (make fhirjs)")
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "dr.rivera")
    pids = sorted(patient_ids(demo_clinic).values())
    bundles = _bundles(c, pids, "4.0", "collection") + _bundles(c, pids, "4.0", "transaction")
    bundles.append(c.get("/fhir/metadata", params={"fhirVersion": "4.0"}).json())
    broken = json.loads(json.dumps(bundles[0]))
    broken["entry"][0]["resource"]["displayName"] = "an R5 element"
    out = subprocess.run([node, str(FHIRJS / "validate.js")], input=json.dumps(bundles + [broken]),
                         capture_output=True, text=True, check=True, timeout=300)
    results = json.loads(out.stdout)
    assert [r["errors"] for r in results[:-1]] == [[]] * len(bundles)
    assert all(r["valid"] for r in results[:-1])
    assert not results[-1]["valid"]  # the validator does look inside the entries


def test_every_reference_resolves_by_the_bundle_rules(demo_clinic: Clinic) -> None:
    with demo_clinic.uow(DOCTOR) as u:
        for pid in patient_ids(demo_clinic).values():
            record = queries.patient_record(u, pid)
            for refs in (fhir.Refs("urn:oid:1.2.3"), fhir.Refs("urn:oid:1.2.3", "rest",
                                                               "https://clinic.example/fhir")):
                for kind in ("collection", "transaction", "searchset"):
                    b = fhir.bundle_dict(fhir.patient_resources(record, refs), now=u.now,
                                         kind=kind)  # type: ignore[arg-type]
                    links = resolve(b)
                    assert links and not unresolved(b), unresolved(b)
                    assert all(link.reference.startswith("urn:uuid:") for link in links) \
                        or refs.style == "rest"
    # the resolver is not lenient: yesterday's style (urn:openitb fullUrls, relative
    # references) resolves nothing
    old = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:openitb:Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": "urn:openitb:Flag/w1", "resource": {
            "resourceType": "Flag", "id": "w1", "subject": {"reference": "Patient/p1"}}}]}
    assert [link.reference for link in unresolved(old)] == ["Patient/p1"]


def test_codes_units_contact_and_identifier(demo_clinic: Clinic,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fhir.ENV_IDENTIFIER_SYSTEM, "urn:oid:2.999.1.42")
    pid = patient_ids(demo_clinic)["ITB-1001"]  # Weber: contact "Greta Weber (wife) +49 ..."
    with demo_clinic.uow(DOCTOR) as u:
        b = fhir.patient_bundle(queries.patient_record(u, pid), now=u.now)
    patient = _resources(b, "Patient")[0]
    assert patient["identifier"][0]["system"] == "urn:oid:2.999.1.42"
    assert patient["identifier"][0]["value"] == "ITB-1001"
    contact = patient["contact"][0]
    assert contact["name"]["text"] == "Greta Weber"
    assert contact["telecom"] == [{"system": "phone", "value": "+49 30 1234567"}]
    assert {"text": "wife"} in contact["relationship"]
    rx = _resources(b, "MedicationRequest")[0]
    dosage = rx["dosageInstruction"][0]
    assert dosage["route"]["coding"] == [t.INTRATHECAL_ROUTE]
    assert dosage["doseAndRate"][0]["rateQuantity"]["code"] == "ug/d"
    med = _resources(b, "Medication")[0]
    assert med["code"]["coding"] == [t.RXNORM_BY_CONCENTRATION[2000.0]]  # Weber: 2000 mcg/mL
    grades = [comp["valueCodeableConcept"]["coding"][0]
              for o in _resources(b, "Observation") if "component" in o
              for comp in o["component"]]
    assert {g["code"] for g in grades} >= {"1+", "2", "3"}  # 1.5 is the coded answer 1+
    assert all(g["system"] == t.MAS_GRADE_SYSTEM and g["display"] == t.MAS_GRADES[g["code"]]
               for g in grades)
    assert "MAS points" not in json.dumps(b)
    monkeypatch.setenv(fhir.ENV_IDENTIFIER_SYSTEM, "not a uri")
    with demo_clinic.uow(DOCTOR) as u, pytest.raises(Exception, match="absolute URI"):
        fhir.patient_bundle(queries.patient_record(u, pid), now=u.now)


def test_explanted_pump_stays_in_the_history(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1003"]
    fields = {"serial": "SN-NEW-1", "volume_ml": 20, "confirmed": True}
    with demo_clinic.uow(DOCTOR) as u:  # reviewed, then confirmed with the review's token
        token = services.replacement_review(u, pid, fields).token
        services.replace_pump(u, pid, {**fields, "review_token": token})
    with demo_clinic.uow(DOCTOR) as u:
        b = fhir.patient_bundle(queries.patient_record(u, pid), now=u.now, version=fhir.R4)
    devices = {d["serialNumber"]: d["status"] for d in _resources(b, "Device")}
    assert devices["SN-NEW-1"] == "active" and list(devices.values()).count("inactive") == 1
    assert any(p["code"]["text"].startswith("explantation") for p in _resources(b, "Procedure"))


def test_fhir_face_reads_searches_and_keeps_the_role_rules(demo_clinic: Clinic) -> None:
    ids = patient_ids(demo_clinic)
    c = TestClient(create_app(demo_clinic, demo=True))
    r = c.get("/fhir/metadata")
    assert r.status_code == 200 and r.json()["fhirVersion"] == "5.0.0"
    r = c.get("/fhir/metadata", headers={"Accept": "application/fhir+json; fhirVersion=4.0"})
    assert r.json()["fhirVersion"] == "4.0.1"
    assert r.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    mia = ids["ITB-1003"]
    r = c.get(f"/fhir/Patient/p{mia}")
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"

    login(c, "nurse.kim")
    system = fhir.identifier_system()
    r = c.get("/fhir/Patient", params={"identifier": f"{system}|ITB-1003"})
    assert r.status_code == 200 and r.json()["total"] == 1
    assert r.json()["entry"][0]["resource"]["id"] == f"p{mia}"
    assert c.get("/fhir/Patient", params={"identifier": "urn:other|ITB-1003"}).json()["total"] == 0
    everything = c.get(f"/fhir/Patient/p{mia}/$everything").json()
    assert everything["type"] == "searchset" and not unresolved(everything)
    for entry in everything["entry"]:
        res = entry["resource"]
        for version in ("5.0", "4.0"):
            one = c.get(f"/fhir/{res['resourceType']}/{res['id']}",
                        params={"fhirVersion": version})
            assert one.status_code == 200, one.text
            assert one.json()["id"] == res["id"]
            assert entry["fullUrl"].endswith(f"/fhir/{res['resourceType']}/{res['id']}")
    assert c.get(f"/fhir/Device/p{mia}-pump999999").status_code == 404
    assert c.get("/fhir/Encounter/p1").status_code == 404
    bad = c.get("/fhir/Patient")
    assert bad.status_code == 400 and bad.json()["issue"][0]["code"] == "invalid"

    c2 = TestClient(create_app(demo_clinic, demo=True))
    login(c2, "mia")
    assert c2.get(f"/fhir/Patient/p{mia}").status_code == 200
    other = ids["ITB-1004"]
    assert c2.get(f"/fhir/Patient/p{other}").status_code == 403
    assert c2.get(f"/fhir/Patient/p{other}/$everything").status_code == 403
    assert c2.get("/fhir/Patient", params={"identifier": "ITB-1004"}).json()["total"] == 0
    assert c2.get("/fhir/Patient", params={"identifier": "ITB-1003"}).json()["total"] == 1


def test_transaction_posted_into_an_empty_clinic_reads_back_the_same(
        demo_clinic: Clinic, empty_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1004"]  # Tanaka: C6, earlier withdrawal, 600 mcg/day
    with demo_clinic.uow(DOCTOR) as u:
        source = queries.patient_record(u, pid)
        sent = fhir.patient_bundle(source, now=u.now, kind="transaction")
        want = {"mrn": source["patient"].mrn, "name": source["patient"].name,
                "birth": source["patient"].birth_date, "contact": source["patient"].emergency_contact,
                "risk": source["risk"], "serial": source["pump"].serial,
                "profile": source["pump"].profile, "dose": source["pump"].dose_per_day,
                "conc": source["pump"].concentration,
                "doses": [d for s in source["screenings"] for d in s.doses],
                "patient": _resources(fhir.patient_bundle(source, now=u.now), "Patient")[0]}
    with empty_clinic.uow(DOCTOR) as u:
        new_id = import_transaction(u, json.loads(json.dumps(sent)))
    with empty_clinic.uow(DOCTOR) as u:
        got = queries.patient_record(u, new_id)
        p, pump = got["patient"], got["pump"]
        assert (p.mrn, p.name, p.birth_date, p.emergency_contact) == (
            want["mrn"], want["name"], want["birth"], want["contact"])
        assert got["risk"] == want["risk"] and p.injury_level == "C6"
        assert (pump.serial, pump.profile) == (want["serial"], want["profile"])
        assert pump.dose_per_day == want["dose"] and pump.concentration == want["conc"]
        assert [d for s in got["screenings"] for d in s.doses] == want["doses"]
        back = fhir.patient_bundle(got, now=u.now)
    assert _resources(back, "Patient")[0] | {"id": None} == want["patient"] | {"id": None}
    # posting the same Bundle again changes nothing (one unit of work, refused whole)
    with pytest.raises(Exception, match="already registered"), empty_clinic.uow(DOCTOR) as u:
        import_transaction(u, json.loads(json.dumps(sent)))
