"""The one table of human labels for every code the clinic shows to people.

Codes (``not_candidate``, ``low_reservoir``, ``hip_adductors`` ...) stay in the database, the API
and the logs; pages show the label. A code missing here is shown with its underscores replaced,
never raw, and ``tests/unit/test_labels.py`` checks every code the clinic defines has a label.
"""
from __future__ import annotations

from collections.abc import Mapping

ALARM = {
    "low_reservoir": "Low reservoir",
    "eri": "Battery replacement due (ERI)",
    "empty_reservoir": "Empty reservoir",
    "end_of_service": "End of service",
    "motor_stall": "Motor stopped",
    "memory_error": "Pump restarted (memory error)",
}
STAGE = {
    "candidate": "Candidate",
    "screening": "Screening trial",
    "screened": "Screened, responder",
    "not_candidate": "Not a candidate",
    "implanted": "Pump implanted",
    "explanted": "Pump removed",
}
MUSCLE_GROUP = {
    "hip_flexors": "Hip flexors",
    "hip_adductors": "Hip adductors",
    "knee_extensors": "Knee extensors",
    "knee_flexors": "Knee flexors",
    "ankle_plantarflexors": "Ankle plantar flexors",
    "elbow_flexors": "Elbow flexors",
    "wrist_flexors": "Wrist flexors",
}
ROLE = {
    "physician": "Physician",
    "nurse": "Nurse",
    "patient": "Patient",
    "admin": "Administrator",
}
DASHBOARD_KIND = {
    "alarm": "Alarm",
    "therapy_stopped": "Therapy stopped",
    "overdue": "Refill overdue",
    "refill_due": "Refill due",
    "eri": "Battery replacement due",
}
# Form and API fields, as an error message names them.
FIELD = {
    "note": "Note",
    "withdrawn_ml": "Volume withdrawn",
    "volume_ml": "Volume filled",
    "concentration": "Concentration",
    "compounded": "Compounded",
    "dose_per_day": "Daily dose",
    "steps": "Flex steps",
    "context": "Context",
    "mode": "Mode",
    "serial": "Serial number",
    "profile": "Pump model",
    "catheter_length_cm": "Catheter length",
    "catheter_replaced": "Catheter replaced",
    "tip_level": "Catheter tip level",
    "override_reason": "Override reason",
    "review_token": "Review",
    "confirmed": "Confirmation",
    "username": "Username",
    "display_name": "Display name",
    "role": "Role",
    "current_password": "Current password",
    "new_password": "New password",
    "confirm_password": "Password typed again",
    "name": "Name",
    "mrn": "Medical record number",
    "birth_date": "Date of birth",
    "origin": "Origin of spasticity",
    "diagnosis": "Diagnosis",
    "weight_kg": "Weight",
    "injury_level": "Injury level",
    "emergency_contact": "Emergency contact",
    "phone": "Phone",
    "version": "Version",
    "page": "Page",
    "minutes": "Scan length",
    "planned_date": "Planned date",
    "patient_id": "Patient",
    "user_id": "User",
    "doses": "Screening doses",
    "dose_mcg": "Bolus dose",
    "effect_hours": "Effect lasted",
    "mas_before": "MAS before",
    "mas_after": "MAS after",
}

# The pump's state at a glance (clinic/pump_state.py), for clinicians; patients read the plain words
# of pump_state.PumpState.plain.
PUMP_STATE = {
    "end_of_service": "End of service: the pump has stopped for good",
    "motor_stall": "Motor stalled: no infusion",
    "mri_stall": "Motor stopped by MRI: no infusion until it resumes",
    "empty_reservoir": "Reservoir empty: no infusion",
    "memory_error": "Memory error: the pump may have stopped",
    "critical_alarm": "Critical alarm",
    "therapy_stopped": "Therapy stopped: no continuous infusion",
    "eri": "Battery at ERI: plan replacement",
    "refill_overdue": "Refill overdue",
    "low_reservoir": "Low reservoir: refill soon",
    "running": "Running",
    "no_pump": "No pump",
}
PUMP_STATE_SEVERITY = {
    "critical": "Critical",
    "warning": "Needs attention",
    "ok": "All well",
    "none": "No pump",
}
# What the timeline's entries are (Visit.kind).
VISIT_KIND = {
    "registration": "Registration",
    "checklist": "Candidate checklist",
    "screening": "Screening",
    "implant": "Implant",
    "program": "Program",
    "therapy_stop": "Therapy stopped",
    "refill": "Refill",
    "alarm": "Alarm acknowledged",
    "alarm raised": "Alarm raised",
    "mri": "MRI scan",
    "mri_check": "Post-MRI check",
    "replacement_planned": "Replacement planned",
    "replacement": "Pump replaced",
}
# A program's guardrail verdict (therapy/guardrails.py Classification).
GUARDRAIL = {
    "within": "Within the recommended range",
    "below_recommended": "Below the recommended range",
    "above_recommended": "Above the recommended range",
    "below_absolute": "Below the absolute limit",
    "above_absolute": "Above the absolute limit",
}

# Every table by name, for ``human(code, table)`` when one code means different things.
TABLES: Mapping[str, Mapping[str, str]] = {
    "alarm": ALARM, "stage": STAGE, "muscle_group": MUSCLE_GROUP, "role": ROLE,
    "dashboard_kind": DASHBOARD_KIND, "pump_state": PUMP_STATE,
    "pump_state_severity": PUMP_STATE_SEVERITY, "visit_kind": VISIT_KIND, "guardrail": GUARDRAIL,
    "field": FIELD,
}


def human(code: object, table: str | None = None) -> str:
    """The label people read for ``code``; ``table`` picks one table, else the first that knows it."""
    key = "" if code is None else str(code)
    tables = [TABLES[table]] if table is not None else list(TABLES.values())
    for labels in tables:
        if key in labels:
            return labels[key]
    return key.replace("_", " ")


def field_label(path: str) -> str:
    """A field as people read it: ``doses[0].mas_after.hip_adductors`` -> "Screening doses 1,
    MAS after, Hip adductors" (each part from FIELD or MUSCLE_GROUP, list positions from 1)."""
    parts = []
    for part in str(path).split("."):
        name, _, index = part.partition("[")
        label = human(name, "field") if name in FIELD else human(name)
        if index.rstrip("]").isdigit():
            label += f" {int(index.rstrip(']')) + 1}"
        parts.append(label[:1].upper() + label[1:])
    return ", ".join(p for p in parts if p)


def person(display_name: str, role: str, patient_name: str | None = None) -> str:
    """How pages name a user: "Dr. Ana Rivera (physiatrist), physician"; a patient's own
    account by the patient's name; a caregiver (an account linked to a patient under another
    name) as "Claire Moreau, caregiver of Leo Moreau"."""
    if role == "patient" and patient_name:
        return (f"{patient_name} (patient)" if display_name == patient_name
                else f"{display_name}, caregiver of {patient_name}")
    return f"{display_name}, {human(role, 'role').lower()}"
