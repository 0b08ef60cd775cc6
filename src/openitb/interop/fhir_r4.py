"""R5 -> R4 for the resources fhir.py builds: the few elements that were renamed or reshaped
between the versions (checked against fhir.resources' R4B models and FHIR.js's R4 definitions).

Only the resource types OpenITB writes are handled; any other type is refused rather than
passed on unconverted."""

from __future__ import annotations

import copy
from typing import Any


def _device(r: dict[str, Any]) -> dict[str, Any]:
    name = r.pop("displayName", None)
    if name:
        r["deviceName"] = [{"name": name, "type": "user-friendly-name"}]
    types = r.pop("type", None)
    if types:
        r["type"] = types[0]
    props = []
    for p in r.pop("property", []):
        q = {"type": p["type"]}
        if "valueQuantity" in p:
            q["valueQuantity"] = [p["valueQuantity"]]
        if "valueCodeableConcept" in p:
            q["valueCode"] = [p["valueCodeableConcept"]]
        props.append(q)
    if props:
        r["property"] = props
    return r


def _medication(r: dict[str, Any]) -> dict[str, Any]:
    form = r.pop("doseForm", None)
    if form:
        r["form"] = form
    for ing in r.get("ingredient", []):
        item = ing.pop("item")
        if "concept" in item:
            ing["itemCodeableConcept"] = item["concept"]
        else:
            ing["itemReference"] = item["reference"]
        if "strengthRatio" in ing:
            ing["strength"] = ing.pop("strengthRatio")
    return r


def _medication_choice(r: dict[str, Any]) -> None:
    med = r.pop("medication")
    if "reference" in med:
        r["medicationReference"] = med["reference"]
    else:
        r["medicationCodeableConcept"] = med["concept"]


def _medication_request(r: dict[str, Any]) -> dict[str, Any]:
    _medication_choice(r)
    return r


def _medication_administration(r: dict[str, Any]) -> dict[str, Any]:
    _medication_choice(r)
    r["effectiveDateTime"] = r.pop("occurenceDateTime")
    return r


def _procedure(r: dict[str, Any]) -> dict[str, Any]:
    if "occurrenceDateTime" in r:
        r["performedDateTime"] = r.pop("occurrenceDateTime")
    return r


def _capability(r: dict[str, Any]) -> dict[str, Any]:
    from openitb.interop.fhir import FHIR_VERSIONS, R4

    r["fhirVersion"] = FHIR_VERSIONS[R4]
    return r


def _same(r: dict[str, Any]) -> dict[str, Any]:
    return r


_CONVERT = {
    "Patient": _same, "Condition": _same, "Observation": _same, "Flag": _same,
    "OperationOutcome": _same, "Device": _device, "Medication": _medication,
    "MedicationRequest": _medication_request,
    "MedicationAdministration": _medication_administration, "Procedure": _procedure,
    "CapabilityStatement": _capability,
}


def to_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """An R4 copy of an R5 resource built by OpenITB (the input is left as it was)."""
    kind = resource.get("resourceType")
    if kind not in _CONVERT:
        raise ValueError(f"no R4 conversion for resource type {kind!r}")
    return _CONVERT[kind](copy.deepcopy(resource))
