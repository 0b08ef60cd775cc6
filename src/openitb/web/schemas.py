"""The typed answers of the clinic: one pydantic model per thing the API returns (and the pages
show), so the OpenAPI document names every field and a generated client gets real classes.

Answers are read from the records the use cases return (``from_attributes``) or from the same
JSON the audit trail keeps; a field the model does not name is left out of the answer, never
passed through. Each model says ``additionalProperties: false`` in the document, so a generated
client has nothing to guess. Free-form values (a prescription in its documented schema, the
arguments of a wire command, an audit row's before/after) are the only open objects.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from openitb.safety.review import Decision
from openitb.therapy.guardrails import Classification


class Out(BaseModel):
    """An answer: unknown keys are dropped, and the document says there are none."""

    model_config = ConfigDict(extra="ignore", from_attributes=True,
                              json_schema_extra={"additionalProperties": False})


# ---- errors ----------------------------------------------------------------------------------
class Error(Out):
    """Every refusal under /api/ (web/app.py's handlers and middlewares): ``error`` is a code
    (``unauthenticated``, ``forbidden``, ``csrf``, ``not_found``, ``conflict``, ``invalid``,
    ``throttled``, ``too_large``, or a use case's own code such as ``stale_review``), ``reason``
    says it in words; an invalid value also names the field, the value given and what is
    allowed."""

    error: str = Field(description="a stable code for the refusal")
    reason: str | None = Field(None, description="what was refused and why, in words")
    field: str | None = Field(None, description="the field at fault (error 'invalid')")
    given: str | None = Field(None, description="the value given, cut to 200 characters")
    allowed: str | None = Field(None, description="what the field accepts")
    errors: int | None = Field(None, description="how many fields were at fault (body checks)")


ERROR_TEXT = {
    400: "a parameter out of range",
    401: "not signed in, or the bearer token is unknown, revoked or expired",
    403: "not allowed for this role, or a missing or wrong X-CSRF-Token (session only)",
    404: "no such record",
    409: "a conflict: someone changed it since you read it, or the pump changed since the review",
    413: "the request body is larger than the clinic accepts",
    422: "a field is invalid (named in the answer), or the use case refused",
    429: "too many failed sign-ins: wait the seconds the reason names",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the one Error schema."""
    return {c: {"model": Error, "description": ERROR_TEXT[c]} for c in codes}


# ---- accounts and sessions -------------------------------------------------------------------
class Csrf(Out):
    csrf_token: str


class SignedIn(Out):
    username: str
    role: str
    patient_id: int | None = None
    csrf_token: str = Field(description="send it as X-CSRF-Token on every unsafe request")


class Status(Out):
    status: str


class PasswordChanged(Out):
    status: str
    csrf_token: str = Field(description="the renewed session's token (the old one stops)")


class PasswordSetDone(Out):
    status: str
    username: str


class UserOut(Out):
    """An account as others see it (never its password hash or feed token)."""

    id: int
    username: str
    display_name: str
    role: str
    patient_id: int | None = None
    active: bool
    created_at: datetime


class UserCreated(UserOut):
    setup_link: str = Field(description="one-time link with which the user sets a password; "
                            "shown once")


class ResetLink(Out):
    reset_link: str


class FeedUrl(Out):
    url: str = Field(description="the personal calendar feed address; shown once")


# ---- personal access tokens ------------------------------------------------------------------
class ApiTokenOut(Out):
    """A personal access token as listed: never the secret (only its hash is stored)."""

    id: int
    name: str
    prefix: str = Field(description="the first characters of the token, to recognise it")
    role: str = Field(description="the owner's role: the token can do what the owner can")
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="send as 'Authorization: Bearer <token>'; shown once")


# ---- patients and their records --------------------------------------------------------------
class PatientOut(Out):
    id: int
    mrn: str
    name: str
    birth_date: date
    origin: str
    population: str
    diagnosis: str
    weight_kg: float
    injury_level: str
    risk_high_injury: bool
    risk_communication: bool
    risk_prior_withdrawal: bool
    stage: str
    checklist: dict[str, Any] = Field(description="the candidate checklist, item: ticked or note")
    emergency_contact: str
    phone: str = ""
    created_at: datetime
    version: int = Field(description="send it back with an edit (PATCH): a conflict is 409")


class PatientListItem(Out):
    id: int
    mrn: str
    name: str
    stage: str
    origin: str
    refill_by: datetime | None = None
    dose_per_day: float | None = Field(None, description="mcg/day")
    withdrawal_risk: bool


class PumpOut(Out):
    id: int
    patient_id: int
    profile: str
    serial: str
    catheter: str
    catheter_length_cm: float
    tip_level: str
    implanted_at: datetime
    explanted_at: datetime | None = None
    active: bool
    concentration: float = Field(description="mcg/mL")
    dose_per_day: float = Field(description="mcg/day")
    reservoir_ml: float = Field(description="mL (estimate)")
    low_alarm_at: datetime | None = None
    empty_at: datetime | None = None
    refill_by: datetime | None = None
    eri_at: datetime | None = None
    synced_at: datetime | None = None
    version: int


class ProgramOut(Out):
    id: int
    patient_id: int
    pump_id: int
    at: datetime
    prescription: dict[str, Any] = Field(description="docs/prescriptions.md")
    concentration: float = Field(description="mcg/mL")
    dose_per_day: float = Field(description="mcg/day")
    classification: str
    reason: str
    override_reason: str | None = None
    by_user: str


class BridgeOut(Out):
    """What the refill's bridge bolus gives (old drug left in the path) and what it leaves."""

    path_volume_ml: float
    volume_ml: float
    duration_h: float
    dose_mcg: float
    unbridged_ml: float
    unbridged_dose_error_pct: float
    given: bool


class RefillOut(Out):
    id: int
    patient_id: int
    pump_id: int
    at: datetime
    expected_ml: float
    withdrawn_ml: float
    discrepancy_ml: float
    flagged: bool
    volume_ml: float
    old_concentration: float = Field(description="mcg/mL")
    concentration: float = Field(description="mcg/mL")
    bridge: dict[str, Any] | None = Field(None, description="the bridge given, as recorded")
    refill_by: datetime | None = None
    low_alarm_at: datetime | None = None
    note: str
    by_user: str


class AlarmOut(Out):
    id: int
    patient_id: int
    pump_id: int
    kind: str
    critical: bool
    raised_at: datetime
    reason: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    note: str | None = None
    cleared_at: datetime | None = None


class InboxAlarm(AlarmOut):
    patient_name: str
    meaning: str = Field(description="what the alarm means and what to do, for the patient")


class ScreeningDoseOut(Out):
    dose_mcg: float
    effect_hours: float = 0
    mas_before: dict[str, float]
    mas_after: dict[str, float]


class ScreeningOut(Out):
    id: int
    patient_id: int
    started_at: datetime
    doses: list[ScreeningDoseOut]
    responder: bool
    effective_dose_mcg: float | None = None
    first_dose_per_day: float | None = None
    reason: str
    by_user: str


class MriOut(Out):
    id: int
    patient_id: int
    pump_id: int
    scan_start: datetime
    scan_end: datetime
    checked_at: datetime | None = None
    check_result: str | None = None
    by_user: str


class VisitOut(Out):
    id: int
    patient_id: int
    at: datetime
    kind: str
    summary: str
    by_user: str


class PredictedEffect(Out):
    """The physiology model's steady-state prediction for a typical patient of this origin."""

    model_patient: str | None = None
    model_description: str | None = None
    dose_per_day: float | None = Field(None, description="mcg/day")
    mas_baseline: float | None = None
    mas: float | None = None
    mas_drop: float | None = None
    csf_lumbar_ng_per_ml: float | None = None
    note: str | None = None
    infusing: bool | None = None


class PatientRecord(Out):
    patient: PatientOut
    withdrawal_risk: list[str] = Field(description="why a withdrawal would be dangerous")
    pump: PumpOut | None = None
    programs: list[ProgramOut]
    refills: list[RefillOut]
    alarms: list[AlarmOut]
    screenings: list[ScreeningOut]
    mri: list[MriOut]
    timeline: list[VisitOut]
    predicted_effect: PredictedEffect | None = None


class Me(Out):
    username: str
    role: str
    patient_id: int | None = None
    record: PatientRecord | None = Field(None, description="a patient's own record")


class DashboardItem(Out):
    urgency: int = Field(description="0 is the most urgent")
    when: datetime | None = None
    kind: str = Field(description="alarm, therapy_stopped, overdue, refill_due or eri")
    patient_id: int
    patient_name: str
    text: str
    alarm_id: int | None = None


class Clock(Out):
    now: datetime
    mode: str | None = None


class AuditRow(Out):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    outcome: str
    prev_hash: str
    row_hash: str


# ---- the safety kernel's review ----------------------------------------------------------------
class ReviewRow(Out):
    field: str
    current: str
    proposed: str
    changed: bool
    classification: Classification | None = None
    reason: str


class VerdictOut(Out):
    rule: str
    classification: Classification
    reason: str
    source: str
    code: str = ""


class OverrideOut(Out):
    required: bool
    roles: list[str] = Field(description="the roles that may give the override")
    reason_min_chars: int
    why: str


class ProjectionOut(Out):
    low_alarm_at: datetime | None = None
    refill_by: datetime | None = None
    empty_at: datetime | None = None
    refill_by_reason: str = ""


class CommandOut(Out):
    name: str
    args: dict[str, Any] = Field(description="the command's arguments, quantities with units")


class ReviewOut(Out):
    """The kernel's review of a proposed change: nothing has been written. Confirm by sending
    the same proposal with ``confirmed: true`` and this ``review_token``."""

    classification: Classification
    reason: str
    refused: bool
    needs_override: bool
    rows: list[ReviewRow]
    warnings: list[str]
    verdicts: list[VerdictOut]
    decision: Decision
    override: OverrideOut
    stop_of_therapy: bool
    projection: ProjectionOut | None = None
    commands: list[CommandOut]
    review_token: str = Field(description="send it with the confirm; a confirm whose proposal "
                              "or pump changed since is refused (409)")


class RefillReviewOut(ReviewOut):
    expected_ml: float | None = None
    withdrawn_ml: float | None = None
    discrepancy_ml: float | None = None
    flagged: bool | None = None
    possible_causes: list[str] = Field(default_factory=list)
    bridge: BridgeOut | None = None
