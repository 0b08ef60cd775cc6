"""A minimal importer: a transaction Bundle written by fhir.py (R5) becomes a patient record in
this clinic, through the clinic's own use cases (register, screening, implant), all in one unit
of work, so an import that fails anywhere writes nothing and every guardrail still applies.

What it carries over: the patient (identifier, name, birth date, origin, weight, diagnosis,
injury level, withdrawal risk factors, emergency contact), each screening bolus with its
Modified Ashworth grades, and the active pump with its current concentration, dose and
estimated reservoir volume (filled as the implant's volume). Explanted pumps and past refills
stay history in the sending clinic: the use cases have no way to record a past refill."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from openitb.clinic import services
from openitb.clinic.uow import UnitOfWork
from openitb.errors import InvalidInput
from openitb.interop import terminology as t
from openitb.interop.fhir import mas_score, validate
from openitb.interop.fhir_resolve import resolve

_LEVEL = re.compile(r"spinal cord injury level (\S+)$")


def _codes(concept: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (concept or {}).get("coding", [])}


def _has(concept: dict[str, Any] | None, code: dict[str, str]) -> bool:
    return (code["system"], code["code"]) in _codes(concept)


def _ext(resource: dict[str, Any], url: str) -> list[Any]:
    return [next(v for k, v in e.items() if k.startswith("value"))
            for e in resource.get("extension", []) if e.get("url") == url]


def _contact(patient: dict[str, Any]) -> str:
    for c in patient.get("contact", []):
        if any(_has(r, t.EMERGENCY_CONTACT) for r in c.get("relationship", [])):
            rel = [r["text"] for r in c["relationship"][1:] if r.get("text")]
            parts = [c.get("name", {}).get("text", "")]
            parts += [f"({r})" for r in rel]
            parts += [tc["value"] for tc in c.get("telecom", []) if tc.get("system") == "phone"]
            return " ".join(p for p in parts if p)
    return ""


def import_transaction(uow: UnitOfWork, bundle: dict[str, Any]) -> int:
    """Create the record of the Bundle's patient; returns the new patient id."""
    validate(bundle)
    if bundle.get("type") != "transaction":
        raise InvalidInput("Bundle.type", bundle.get("type"), "transaction")
    entries = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    links = {(link.source, link.reference): link.target for link in resolve(bundle)}

    def target(source: str, ref: dict[str, Any]) -> str | None:
        return links.get((source, ref.get("reference", "")))

    def of_type(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(u, r) for u, r in entries.items() if r["resourceType"] == kind]

    patients = of_type("Patient")
    if len(patients) != 1:
        raise InvalidInput("Bundle.entry", f"{len(patients)} Patient resources", "exactly one")
    patient_url, patient = patients[0]

    def about_patient(url: str, r: dict[str, Any]) -> bool:
        return target(url, r.get("subject", {})) == patient_url

    mrn = next((i["value"] for i in patient.get("identifier", [])
                if _has(i.get("type"), t.MEDICAL_RECORD_NUMBER)), None)
    if not mrn:
        raise InvalidInput("Patient.identifier", patient.get("identifier"),
                           "an identifier of type MR (medical record number)")
    fields: dict[str, Any] = {"mrn": mrn, "name": patient["name"][0]["text"],
                              "birth_date": patient["birthDate"],
                              "emergency_contact": _contact(patient)}
    for url, cond in of_type("Condition"):
        if about_patient(url, cond) and _has(cond.get("code"), t.SPASTICITY):
            origins = _ext(cond, t.EXT_SPASTICITY_ORIGIN)
            fields["origin"] = origins[0] if origins else None
            for risk in _ext(cond, t.EXT_RISK_FACTOR):
                fields[risk] = True
            for site in cond.get("bodySite", []):
                m = _LEVEL.match(site.get("text", ""))
                if m:
                    fields["injury_level"] = m.group(1)
            fields["diagnosis"] = " ".join(n["text"] for n in cond.get("note", []))
    for url, obs in of_type("Observation"):
        if about_patient(url, obs) and _has(obs.get("code"), t.BODY_WEIGHT):
            fields["weight_kg"] = obs["valueQuantity"]["value"]
    pid = services.register_patient(uow, fields).id

    # Screening boluses, grouped by trial (same start), with their grades.
    trials: dict[str, list[dict[str, Any]]] = {}
    for url, given in of_type("MedicationAdministration"):
        if not about_patient(url, given):
            continue
        dose: dict[str, Any] = {"dose_mcg": given["dosage"]["dose"]["value"],
                                "effect_hours": (_ext(given, t.EXT_EFFECT_DURATION) or
                                                 [{"value": 0}])[0]["value"],
                                "mas_before": {}, "mas_after": {}}
        for o_url, obs in of_type("Observation"):
            if not any(target(o_url, p) == url for p in obs.get("partOf", [])):
                continue
            group = obs["bodySite"]["text"].replace(" ", "_")
            before, after = obs["component"]
            dose["mas_before"][group] = mas_score(before["valueCodeableConcept"])
            dose["mas_after"][group] = mas_score(after["valueCodeableConcept"])
        trials.setdefault(given["occurenceDateTime"], []).append(dose)
    for started, doses in sorted(trials.items()):
        services.record_screening(uow, pid, doses, started_at=datetime.fromisoformat(started))

    # The active pump: its device, the medication in it and the current rate.
    for _url, device in of_type("Device"):
        if device.get("status") != "active":
            continue
        props = {p["type"]["text"]: p for p in device.get("property", [])}
        implant: dict[str, Any] = {
            "profile": device["modelNumber"], "serial": device["serialNumber"],
            "catheter_length_cm": props["catheter length"]["valueQuantity"]["value"],
            "tip_level": props["catheter tip level"]["valueCodeableConcept"]["text"],
            "volume_ml": max(0.5, props["reservoir volume (estimated)"]["valueQuantity"]["value"])}
        for r_url, rx in of_type("MedicationRequest"):
            if rx.get("status") not in ("active", "on-hold") or not about_patient(r_url, rx):
                continue
            med = entries[target(r_url, rx["medication"]["reference"]) or ""]
            implant["concentration"] = med["ingredient"][0]["strengthRatio"]["numerator"]["value"]
            implant["dose_per_day"] = rx["dosageInstruction"][0]["doseAndRate"][0][
                "rateQuantity"]["value"]
        # The implant goes through the safety kernel like any other: reviewed, then confirmed
        # with the review's token (posting the Bundle is the importer's confirmation).
        implant["confirmed"] = True
        implant["review_token"] = services.implant_review(uow, pid, implant).token
        services.implant(uow, pid, implant)
    return pid
