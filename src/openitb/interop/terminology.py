"""The standard codes the FHIR export uses, each with the display its code system publishes.

Only codes whose display was checked against a published source are here (the source is named
beside each). Concepts for which no code could be confirmed are exported as text only; they are
listed in ``TEXT_ONLY`` so that the gap is visible, not hidden."""

from __future__ import annotations

from typing import Any

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"

# OpenITB's own code system for the Modified Ashworth Scale grades (Bohannon & Smith 1987): no
# standard code system for the six answers could be confirmed, so they are defined here, with
# their published wording, and the scale itself carries its SNOMED CT code.
MAS_GRADE_SYSTEM = "urn:openitb:fhir:CodeSystem:modified-ashworth-grade"
MAS_GRADES: dict[str, str] = {
    "0": "No increase in muscle tone",
    "1": "Slight increase in muscle tone, a catch and release or minimal resistance at the end "
         "of the range of motion",
    "1+": "Slight increase in muscle tone, a catch followed by minimal resistance through less "
          "than half of the range of motion",
    "2": "More marked increase in muscle tone through most of the range of motion, but the part "
         "is easily moved",
    "3": "Considerable increase in muscle tone, passive movement difficult",
    "4": "Affected part rigid in flexion or extension",
}
# Extensions OpenITB defines (no standard element carries these facts).
EXT_BASE = "urn:openitb:fhir:StructureDefinition"
EXT_SPASTICITY_ORIGIN = f"{EXT_BASE}:spasticity-origin"  # valueCode spinal | cerebral
EXT_EFFECT_DURATION = f"{EXT_BASE}:screening-effect-duration"  # valueQuantity in h
EXT_RISK_FACTOR = f"{EXT_BASE}:withdrawal-risk-factor"  # valueCode, one per clinic flag


def coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def concept(text: str, *codings: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": text}
    if codings:
        out["coding"] = list(codings)
    return out


# SNOMED CT; displays as published (HL7 route-codes value set and DICOM CID 11 for the route;
# SNOMED CT substance hierarchy; SNOMED CT assessment scale and finding hierarchies).
INTRATHECAL_ROUTE = coding(SNOMED, "72607000", "Intrathecal route")
BACLOFEN_SUBSTANCE = coding(SNOMED, "387342009", "Baclofen (substance)")
MODIFIED_ASHWORTH_SCALE = coding(SNOMED, "765771006", "Modified Ashworth Scale (assessment scale)")
SPASTICITY = coding(SNOMED, "221360009", "Spasticity (finding)")

# RxNorm clinical drugs for the 20 mL intrathecal vials, by concentration in mcg/mL (NLM NDC to
# RxNorm crosswalk). No RxNorm concept for the 500 mcg/mL vial could be confirmed: it is text.
RXNORM_BY_CONCENTRATION: dict[float, dict[str, str]] = {
    1000.0: coding(RXNORM, "1300890", "20 ML baclofen 1 MG/ML Injection"),
    2000.0: coding(RXNORM, "1666613", "20 ML baclofen 2 MG/ML Injection"),
}

# LOINC: body weight, for the weight the clinic doses children by.
BODY_WEIGHT = coding(LOINC, "29463-7", "Body weight")

# HL7 v2 tables as published in HL7 terminology (THO).
MEDICAL_RECORD_NUMBER = coding(V2_IDENTIFIER_TYPE, "MR", "Medical record number")
EMERGENCY_CONTACT = coding(V2_CONTACT_ROLE, "C", "Emergency Contact")
CONDITION_ACTIVE = coding(CONDITION_CLINICAL, "active", "Active")
CATEGORY_EXAM = coding(OBSERVATION_CATEGORY, "exam", "Exam")
CATEGORY_VITAL_SIGNS = coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
FLAG_CLINICAL = coding(FLAG_CATEGORY, "clinical", "Clinical")

# Concepts exported as text only: no code confirmed against its published display.
TEXT_ONLY = (
    "procedure: implantation of the intrathecal pump (SNOMED CT)",
    "procedure: explantation of the intrathecal pump (SNOMED CT)",
    "procedure: refill of the implanted pump reservoir (SNOMED CT)",
    "device type: implantable intrathecal infusion pump (SNOMED CT)",
    "medication: baclofen 500 mcg/mL intrathecal injection, and any other concentration than "
    "1000 and 2000 mcg/mL (RxNorm)",
    "flag: higher risk of baclofen withdrawal (SNOMED CT)",
    "observation: Modified Ashworth Scale score (LOINC)",
)

UCUM_UNITS = {"mcg/day": "ug/d", "mcg/mL": "ug/mL", "mcg": "ug", "mL": "mL", "cm": "cm",
              "h": "h", "kg": "kg"}


def quantity(value: float, unit: str) -> dict[str, Any]:
    """A UCUM quantity; ``unit`` is the clinic's own spelling (mcg/day ...)."""
    return {"value": value, "unit": unit, "system": UCUM, "code": UCUM_UNITS[unit]}
