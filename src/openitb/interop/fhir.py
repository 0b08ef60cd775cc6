"""A patient's ITB record as a FHIR R5 Bundle (collection), built and validated with
fhir.resources: Patient, Device (the pump), MedicationRequest (the current rate), Procedure per
refill, Observation per Modified Ashworth score, Flag for a higher withdrawal risk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.bundle import Bundle

from openitb.store.models import Patient, Pump

UCUM = "http://unitsofmeasure.org"


def _ref(kind: str, ident: object) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def _when(t: datetime) -> str:
    return t.isoformat()


def patient_bundle(record: dict[str, Any], *, now: datetime) -> Bundle:
    """Build the Bundle for ``record`` (as returned by clinic.queries.patient_record)."""
    p: Patient = record["patient"]
    pid = f"p{p.id}"
    subject = _ref("Patient", pid)
    entries: list[dict[str, Any]] = [{
        "fullUrl": f"urn:openitb:Patient/{pid}",
        "resource": {
            "resourceType": "Patient", "id": pid,
            "identifier": [{"system": "urn:openitb:mrn", "value": p.mrn}],
            "name": [{"text": p.name}], "birthDate": p.birth_date.isoformat(),
            **({"contact": [{"name": {"text": p.emergency_contact}}]}
               if p.emergency_contact else {}),
        }}]
    pump: Pump | None = record["pump"]
    if pump is not None:
        did = f"d{pump.id}"
        entries.append({"fullUrl": f"urn:openitb:Device/{did}", "resource": {
            "resourceType": "Device", "id": did, "serialNumber": pump.serial,
            "displayName": f"implanted intrathecal pump {pump.profile}",
            "status": "active" if pump.active else "inactive",
            "note": [{"text": f"catheter {pump.catheter_length_cm:g} cm, tip at {pump.tip_level}; "
                              f"implanted {pump.implanted_at:%Y-%m-%d}"}]}})
        if pump.dose_per_day > 0:
            entries.append({"fullUrl": f"urn:openitb:MedicationRequest/m{pump.id}", "resource": {
                "resourceType": "MedicationRequest", "id": f"m{pump.id}", "status": "active",
                "intent": "order", "subject": subject,
                "medication": {"concept": {"text": f"baclofen intrathecal "
                                                   f"{pump.concentration:g} mcg/mL"}},
                "device": [{"reference": _ref("Device", did)}],
                "dosageInstruction": [{
                    "text": f"{pump.dose_per_day:.4g} mcg/day by implanted pump",
                    "route": {"text": "intrathecal"},
                    "doseAndRate": [{"rateQuantity": {
                        "value": round(pump.dose_per_day, 4), "unit": "mcg/day",
                        "system": UCUM, "code": "ug/d"}}]}]}})
    for r in record["refills"]:
        entries.append({"fullUrl": f"urn:openitb:Procedure/r{r.id}", "resource": {
            "resourceType": "Procedure", "id": f"r{r.id}", "status": "completed",
            "subject": subject, "code": {"text": "intrathecal pump refill"},
            "occurrenceDateTime": _when(r.at),
            "note": [{"text": f"withdrew {r.withdrawn_ml:g} mL (expected {r.expected_ml:g} mL); "
                              f"filled {r.volume_ml:g} mL at {r.concentration:g} mcg/mL"
                              + ("; bridge bolus given" if r.bridge else "")}]}})
    for s in record["screenings"]:
        for i, d in enumerate(s.doses):
            for phase in ("before", "after"):
                for group, score in d[f"mas_{phase}"].items():
                    oid = f"s{s.id}-{i}-{phase}-{group}".replace("_", "-")
                    entries.append({"fullUrl": f"urn:openitb:Observation/{oid}", "resource": {
                        "resourceType": "Observation", "id": oid, "status": "final",
                        "code": {"text": f"Modified Ashworth Scale, {group.replace('_', ' ')}, "
                                         f"{phase} {d['dose_mcg']:g} mcg screening bolus"},
                        "subject": subject, "effectiveDateTime": _when(s.started_at),
                        "valueQuantity": {"value": score, "unit": "MAS points"}}})
    for i, risk in enumerate(record["risk"]):
        entries.append({"fullUrl": f"urn:openitb:Flag/w{p.id}-{i}", "resource": {
            "resourceType": "Flag", "id": f"w{p.id}-{i}", "status": "active",
            "subject": subject,
            "code": {"text": f"higher risk of baclofen withdrawal: {risk}"}}})
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection",
                                  "timestamp": _when(now), "entry": entries})
