"""A patient's ITB record as FHIR: R5 by default, R4 on request (fhir_r4.py).

Resources: Patient (identifier in the clinic's system, emergency contact with telecom), Condition
(spasticity, its origin), Observation (body weight; Modified Ashworth grades per muscle group,
before and after each screening bolus, as coded answers), MedicationAdministration (each
screening bolus), Medication (the product in the pump), MedicationRequest (the current program),
Device (every pump, explanted ones included), Procedure (implant, explant, each refill) and Flag
(higher withdrawal risk).

Two reference styles, one builder:
- ``urn``: fullUrls are ``urn:uuid:`` and references point at them (collection, transaction;
  resolvable inside the Bundle without a server);
- ``rest``: fullUrls are absolute (``{base}/Type/id``) and references relative (``Type/id``),
  for the read-only FHIR face.
Resource ids are ``p{patient}-...`` so that a read can find the patient (and check access)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from openitb.interop import terminology as t
from openitb.store.models import Patient, Program, Pump, Refill, Screening
from openitb.therapy.screening import MAS_GRADES, mas_grade

DEFAULT_IDENTIFIER_SYSTEM = "urn:openitb:local-clinic:mrn"
ENV_IDENTIFIER_SYSTEM = "OPENITB_FHIR_IDENTIFIER_SYSTEM"
R5, R4 = "5.0", "4.0"
FHIR_VERSIONS = {R5: "5.0.0", R4: "4.0.1"}
MEDIA_TYPE = "application/fhir+json"
BundleType = Literal["collection", "transaction", "searchset"]
_PHONE = re.compile(r"(\+?\d[\d\s().\-/]{4,}\d)")
_NS = uuid.UUID("6f1c6d1e-7a53-4b0e-9a8e-0b3c0d1f17a1")  # OpenITB's namespace for fullUrls


def identifier_system() -> str:
    """The clinic's identifier system for MRNs (``OPENITB_FHIR_IDENTIFIER_SYSTEM``): a URI the
    clinic owns, e.g. ``urn:oid:...`` or ``https://hospital.example/fhir/mrn``, so that two
    clinics' patients never share an identifier. The default marks a clinic that has not set it."""
    value = os.environ.get(ENV_IDENTIFIER_SYSTEM, "").strip()
    if not value:
        return DEFAULT_IDENTIFIER_SYSTEM
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$", value):
        from openitb.errors import InvalidInput

        raise InvalidInput(ENV_IDENTIFIER_SYSTEM, value, "an absolute URI (urn:oid:..., https://...)")
    return value


def media_type(version: str) -> str:
    return f"{MEDIA_TYPE}; fhirVersion={version}"


@dataclass(frozen=True)
class Refs:
    """How fullUrls and references are written (see the module docstring)."""

    system: str
    style: Literal["urn", "rest"] = "urn"
    base: str = ""

    def full_url(self, kind: str, ident: str) -> str:
        if self.style == "rest":
            return f"{self.base.rstrip('/')}/{kind}/{ident}"
        return f"urn:uuid:{uuid.uuid5(_NS, f'{self.system}|{kind}/{ident}')}"

    def ref(self, kind: str, ident: str) -> dict[str, str]:
        if self.style == "rest":
            return {"reference": f"{kind}/{ident}"}
        return {"reference": self.full_url(kind, ident)}


def _when(at: datetime) -> str:
    return at.isoformat()


def mas_code(score: float) -> dict[str, Any]:
    """A stored score (0-4, 1+ stored as 1.5) as the coded Modified Ashworth answer."""
    key = mas_grade(score)
    if key is None:  # not one of the six grades: keep the number as text, never a wrong code
        return {"text": f"{score:g} (not a Modified Ashworth grade)"}
    return t.concept(f"MAS {key}", t.coding(t.MAS_GRADE_SYSTEM, key, t.MAS_GRADES[key]))


def mas_score(answer: dict[str, Any]) -> float:
    """Inverse of :func:`mas_code` (for the importer)."""
    for c in answer.get("coding", []):
        if c.get("system") == t.MAS_GRADE_SYSTEM:
            return MAS_GRADES[c["code"]]
    raise ValueError(f"not a coded Modified Ashworth grade: {answer}")


def split_contact(text: str) -> dict[str, Any]:
    """'Greta Weber (wife) +49 30 1234567' -> name, relationship text and phone telecom."""
    out: dict[str, Any] = {"relationship": [t.concept("emergency contact", t.EMERGENCY_CONTACT)]}
    rest = text.strip()
    phones = _PHONE.findall(rest)
    for ph in phones:
        rest = rest.replace(ph, " ")
    rel = re.search(r"\(([^)]*)\)", rest)
    if rel:
        if rel.group(1).strip():
            out["relationship"].append({"text": " ".join(rel.group(1).split())})
        rest = rest.replace(rel.group(0), " ")
    name = " ".join(rest.replace(",", " ").split())
    if name:
        out["name"] = {"text": name}
    if phones:
        out["telecom"] = [{"system": "phone", "value": " ".join(p.split())} for p in phones]
    if not name and not phones:
        out["name"] = {"text": text.strip()}
    return out


class _Builder:
    def __init__(self, record: dict[str, Any], refs: Refs) -> None:
        self.record, self.refs = record, refs
        self.patient: Patient = record["patient"]
        self.pid = f"p{self.patient.id}"
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def add(self, resource: dict[str, Any]) -> dict[str, str]:
        self.entries.append((self.refs.full_url(resource["resourceType"], resource["id"]),
                             resource))
        return self.refs.ref(resource["resourceType"], resource["id"])

    def id(self, suffix: str) -> str:
        return f"{self.pid}-{suffix}".replace("_", "-")

    def build(self) -> list[tuple[str, dict[str, Any]]]:
        p = self.patient
        subject = self.add(self._patient())
        self._condition(subject)
        self.add({"resourceType": "Observation", "id": self.id("weight"), "status": "final",
                  "category": [t.concept("Vital Signs", t.CATEGORY_VITAL_SIGNS)],
                  "code": t.concept("Body weight", t.BODY_WEIGHT), "subject": subject,
                  "effectiveDateTime": _when(p.created_at),
                  "valueQuantity": t.quantity(p.weight_kg, "kg")})
        for s in self.record["screenings"]:
            self._screening(s, subject)
        pumps: list[Pump] = list(self.record.get("pumps") or p.pumps)
        for pump in pumps:
            self._pump(pump, subject)
        for i, risk in enumerate(self.record["risk"]):
            self.add({"resourceType": "Flag", "id": self.id(f"risk{i}"), "status": "active",
                      "category": [t.concept("Clinical", t.FLAG_CLINICAL)],
                      "code": {"text": f"higher risk of baclofen withdrawal: {risk}"},
                      "subject": subject})
        return self.entries

    def _patient(self) -> dict[str, Any]:
        p = self.patient
        res: dict[str, Any] = {
            "resourceType": "Patient", "id": self.pid,
            "identifier": [{"use": "usual", "type": t.concept("Medical record number",
                                                              t.MEDICAL_RECORD_NUMBER),
                            "system": self.refs.system, "value": p.mrn}],
            "active": True, "name": [{"text": p.name}], "birthDate": p.birth_date.isoformat()}
        if p.emergency_contact:
            res["contact"] = [split_contact(p.emergency_contact)]
        return res

    def _condition(self, subject: dict[str, str]) -> None:
        p = self.patient
        risks = [k for k in ("risk_high_injury", "risk_communication", "risk_prior_withdrawal")
                 if getattr(p, k)]
        res: dict[str, Any] = {
            "resourceType": "Condition", "id": self.id("spasticity"),
            "extension": [{"url": t.EXT_SPASTICITY_ORIGIN, "valueCode": p.origin}]
            + [{"url": t.EXT_RISK_FACTOR, "valueCode": k} for k in risks],
            "clinicalStatus": t.concept("Active", t.CONDITION_ACTIVE),
            "code": t.concept(f"Spasticity of {p.origin} origin", t.SPASTICITY),
            "subject": subject}
        if p.injury_level:
            res["bodySite"] = [{"text": f"spinal cord injury level {p.injury_level}"}]
        if p.diagnosis:
            res["note"] = [{"text": p.diagnosis}]
        self.add(res)

    def _screening(self, s: Screening, subject: dict[str, str]) -> None:
        for i, d in enumerate(s.doses):
            admin: dict[str, Any] = {
                "resourceType": "MedicationAdministration", "id": self.id(f"screen{s.id}-{i}"),
                "status": "completed",
                "medication": {"concept": t.concept("baclofen intrathecal screening bolus",
                                                    t.BACLOFEN_SUBSTANCE)},
                "subject": subject, "occurenceDateTime": _when(s.started_at),
                "dosage": {"text": f"{d['dose_mcg']:g} mcg intrathecal screening bolus",
                           "route": t.concept("intrathecal", t.INTRATHECAL_ROUTE),
                           "dose": t.quantity(float(d["dose_mcg"]), "mcg")}}
            admin["extension"] = [{"url": t.EXT_EFFECT_DURATION,
                                   "valueQuantity": t.quantity(float(d.get("effect_hours") or 0),
                                                               "h")}]
            given = self.add(admin)
            for group in sorted(d["mas_before"]):
                self.add({
                    "resourceType": "Observation", "id": self.id(f"mas{s.id}-{i}-{group}"),
                    "status": "final", "partOf": [given],
                    "category": [t.concept("Exam", t.CATEGORY_EXAM)],
                    "code": t.concept("Modified Ashworth Scale", t.MODIFIED_ASHWORTH_SCALE),
                    "subject": subject, "effectiveDateTime": _when(s.started_at),
                    "bodySite": {"text": group.replace("_", " ")},
                    "component": [
                        {"code": {"text": "before the screening bolus"},
                         "valueCodeableConcept": mas_code(d["mas_before"][group])},
                        {"code": {"text": "after the screening bolus"},
                         "valueCodeableConcept": mas_code(d["mas_after"][group])}]})

    def _pump(self, pump: Pump, subject: dict[str, str]) -> None:
        device_id = self.id(f"pump{pump.id}")
        props: list[dict[str, Any]] = [
            {"type": {"text": "catheter length"},
             "valueQuantity": t.quantity(pump.catheter_length_cm, "cm")},
            {"type": {"text": "catheter tip level"},
             "valueCodeableConcept": {"text": pump.tip_level}}]
        if pump.active:
            props.append({"type": {"text": "reservoir volume (estimated)"},
                          "valueQuantity": t.quantity(round(pump.reservoir_ml, 3), "mL")})
        device = self.add({
            "resourceType": "Device", "id": device_id, "status": "active" if pump.active
            else "inactive", "displayName": f"implanted intrathecal pump {pump.profile}",
            "serialNumber": pump.serial, "modelNumber": pump.profile,
            "type": [{"text": "implantable intrathecal infusion pump"}],
            "property": props,
            "note": [{"text": f"catheter {pump.catheter} {pump.catheter_length_cm:g} cm, tip at "
                              f"{pump.tip_level}"}]})
        self.add({"resourceType": "Procedure", "id": self.id(f"implant{pump.id}"),
                  "status": "completed", "code": {"text": "implantation of intrathecal pump"},
                  "subject": subject, "occurrenceDateTime": _when(pump.implanted_at),
                  "focalDevice": [{"action": {"text": "implanted"}, "manipulated": device}]})
        if pump.explanted_at is not None:
            self.add({"resourceType": "Procedure", "id": self.id(f"explant{pump.id}"),
                      "status": "completed", "code": {"text": "explantation of intrathecal pump"},
                      "subject": subject, "occurrenceDateTime": _when(pump.explanted_at),
                      "focalDevice": [{"action": {"text": "removed"}, "manipulated": device}]})
        for r in self._refills(pump):
            self.add({"resourceType": "Procedure", "id": self.id(f"refill{r.id}"),
                      "status": "completed",
                      "code": {"text": "refill of implanted intrathecal pump"},
                      "subject": subject, "occurrenceDateTime": _when(r.at),
                      "focalDevice": [{"action": {"text": "refilled"}, "manipulated": device}],
                      "note": [{"text": f"withdrew {r.withdrawn_ml!r} mL (expected "
                                        f"{r.expected_ml!r} mL); filled {r.volume_ml!r} mL at "
                                        f"{r.concentration!r} mcg/mL"
                                        + ("; bridge bolus given" if r.bridge else "")}]})
        if pump.active and pump.concentration > 0:
            self._medication(pump, subject)

    def _refills(self, pump: Pump) -> Iterable[Refill]:
        return [r for r in self.record["refills"] if r.pump_id == pump.id]

    def _medication(self, pump: Pump, subject: dict[str, str]) -> None:
        conc = float(pump.concentration)
        product = t.RXNORM_BY_CONCENTRATION.get(conc)
        text = f"baclofen intrathecal {conc:g} mcg/mL"
        med = self.add({
            "resourceType": "Medication", "id": self.id(f"med{pump.id}"),
            "code": t.concept(text, *([product] if product else [])),
            "doseForm": {"text": "intrathecal solution"},
            "ingredient": [{"item": {"concept": t.concept("baclofen", t.BACLOFEN_SUBSTANCE)},
                            "isActive": True,
                            "strengthRatio": {"numerator": t.quantity(conc, "mcg"),
                                              "denominator": t.quantity(1.0, "mL")}}]})
        programs: list[Program] = [g for g in self.record["programs"] if g.pump_id == pump.id]
        rx_id = self.id(f"rx{programs[-1].id}" if programs else f"rx-pump{pump.id}")
        dose = float(pump.dose_per_day)
        self.add({
            "resourceType": "MedicationRequest", "id": rx_id,
            "status": "active" if dose > 0 else "on-hold", "intent": "order",
            "medication": {"reference": med}, "subject": subject,
            **({"authoredOn": _when(programs[-1].at)} if programs else {}),
            "note": [{"text": f"delivered by implanted pump {pump.serial}"}],
            "dosageInstruction": [{
                "text": f"{dose:g} mcg/day by implanted intrathecal pump",
                "route": t.concept("intrathecal", t.INTRATHECAL_ROUTE),
                "doseAndRate": [{"rateQuantity": t.quantity(dose, "mcg/day")}]}]})


def patient_resources(record: dict[str, Any], refs: Refs) -> list[tuple[str, dict[str, Any]]]:
    """(fullUrl, R5 resource) for every resource of the patient's record."""
    return _Builder(record, refs).build()


def bundle_dict(entries: list[tuple[str, dict[str, Any]]], *, now: datetime,
                kind: BundleType = "collection", version: str = R5) -> dict[str, Any]:
    """The Bundle as JSON data in ``version`` (R5 or R4). A transaction POSTs every resource
    (the server assigns ids and rewrites the urn:uuid references), the Patient conditionally
    on its identifier so that posting twice does not duplicate the patient."""
    from openitb.interop.fhir_r4 import to_r4

    out: list[dict[str, Any]] = []
    for full_url, res in entries:
        res = to_r4(res) if version == R4 else res
        entry: dict[str, Any] = {"fullUrl": full_url, "resource": res}
        if kind == "transaction":
            res = {k: v for k, v in res.items() if k != "id"}
            entry["resource"] = res
            request: dict[str, str] = {"method": "POST", "url": res["resourceType"]}
            if res["resourceType"] == "Patient":
                ident = res["identifier"][0]
                request["ifNoneExist"] = f"identifier={ident['system']}|{ident['value']}"
            entry["request"] = request
        elif kind == "searchset":
            entry["search"] = {"mode": "match" if res["resourceType"] == "Patient"
                               else "include"}
        out.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": out}
    if kind != "transaction":
        bundle["timestamp"] = _when(now)
    if kind == "searchset":
        bundle["total"] = sum(1 for e in out if e["search"]["mode"] == "match")
    return bundle


def validate(bundle: dict[str, Any], version: str = R5) -> Any:
    """Parse with fhir.resources (R5) or its R4B models (for R4): raises on an invalid Bundle."""
    if version == R4:
        from fhir.resources.R4B.bundle import Bundle as BundleR4B

        return BundleR4B.model_validate(bundle)
    from fhir.resources.bundle import Bundle

    return Bundle.model_validate(bundle)


def validate_resource(resource: dict[str, Any], version: str = R5) -> Any:
    """One resource, validated by its own fhir.resources model (R5, or R4B for R4)."""
    from fhir.resources import get_fhir_model_class
    from fhir.resources.R4B import get_fhir_model_class as get_r4b_class

    model = (get_r4b_class if version == R4 else get_fhir_model_class)(resource["resourceType"])
    return model.model_validate(resource)


def patient_bundle(record: dict[str, Any], *, now: datetime, kind: BundleType = "collection",
                   version: str = R5, system: str | None = None) -> dict[str, Any]:
    """The patient's record as a validated Bundle (JSON data), urn:uuid fullUrls."""
    refs = Refs(system or identifier_system())
    bundle = bundle_dict(patient_resources(record, refs), now=now, kind=kind, version=version)
    validate(bundle, version)
    return bundle
