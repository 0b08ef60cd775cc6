"""The JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json).

Authentication is the same signed session cookie as the pages (POST /api/v1/auth/login), and
every unsafe request carries the CSRF token in the ``X-CSRF-Token`` header. Permission is checked
before the body is read (403 for a role that may not act), and again by the use case."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from openitb.clinic import accounts, queries, services
from openitb.clinic.clock import clock_mode
from openitb.clinic.driving import Planned
from openitb.clinic.uow import Actor, jsonable, snapshot
from openitb.errors import RefusedOperation
from openitb.web import security
from openitb.web.deps import check_csrf, need, sign_in, signed_in, uow
from openitb.web.fhir_api import FHIR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["clinic"])


class Error(BaseModel):
    error: str
    reason: str | None = None
    field: str | None = None
    given: str | None = None
    allowed: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Error}, 403: {"model": Error}, 404: {"model": Error},
    409: {"model": Error}, 422: {"model": Error}}


class Bounded(BaseModel):
    """A request body: no field it does not name, no text longer than a field could hold."""

    model_config = ConfigDict(extra="forbid", str_max_length=2000)


class Login(Bounded):
    username: str = Field(max_length=320)  # normalised (and refused past 80) by the use case
    password: str = Field(max_length=200)


class PatientIn(Bounded):
    mrn: str = Field(max_length=40)
    name: str = Field(max_length=200)
    birth_date: date
    origin: Literal["spinal", "cerebral"]
    weight_kg: float
    diagnosis: str = Field("", max_length=200)
    injury_level: str = Field("", max_length=10)
    risk_high_injury: bool = False
    risk_communication: bool = False
    risk_prior_withdrawal: bool = False
    emergency_contact: str = Field("", max_length=200)


class PatientEdit(Bounded):
    version: int = Field(ge=1, lt=2**63,
                         description="the version you read; a different one means a conflict")
    name: str | None = Field(None, max_length=200)
    weight_kg: float | None = None
    diagnosis: str | None = Field(None, max_length=200)
    injury_level: str | None = Field(None, max_length=10)
    risk_high_injury: bool | None = None
    risk_communication: bool | None = None
    risk_prior_withdrawal: bool | None = None
    emergency_contact: str | None = Field(None, max_length=200)


class Checklist(Bounded):
    screening_response: bool = False
    body_size: bool = False
    no_infection: bool = False
    no_allergy: bool = False
    interferes_with_function: bool = False
    note: str = Field("", max_length=1000)


class ScreeningDoseIn(BaseModel):
    dose_mcg: float
    effect_hours: float = 0
    mas_before: dict[str, float]
    mas_after: dict[str, float]


class ScreeningIn(BaseModel):
    doses: list[ScreeningDoseIn] = Field(max_length=3)


TOKEN = ("the review_token of the review being confirmed (from .../review); a confirm whose "
         "proposal or pump state changed since is refused with 409")


class ImplantIn(BaseModel):
    profile: str
    serial: str = Field(max_length=40)
    catheter_length_cm: float
    tip_level: str
    volume_ml: float
    concentration: float
    dose_per_day: float | None = None
    confirmed: bool = False
    override_reason: str | None = None
    review_token: str | None = Field(None, max_length=100, description=TOKEN)


class ProgramIn(BaseModel):
    prescription: dict[str, Any] | None = Field(
        None, description="any mode in the documented prescription schema (docs/prescriptions.md); "
        "when given, mode, dose_per_day and steps are ignored")
    mode: Literal["continuous", "flex"] = "continuous"
    dose_per_day: float | None = None
    steps: str | None = Field(None, description="flex: lines of 'HH:MM DOSE' (mcg/day)")
    context: Literal["titration", "maintenance"] = "maintenance"
    confirmed: bool = False
    override_reason: str | None = None
    review_token: str | None = Field(None, max_length=100, description=TOKEN)


class RefillIn(BaseModel):
    withdrawn_ml: float
    volume_ml: float
    concentration: float
    compounded: bool = False
    note: str = ""
    confirmed: bool = False
    override_reason: str | None = None
    review_token: str | None = Field(None, max_length=100, description=TOKEN)


class AckIn(Bounded):
    note: str = Field(max_length=2000)


class MriIn(Bounded):
    minutes: float


class ReplacementIn(Bounded):
    planned_date: date


class ReplaceIn(BaseModel):
    serial: str = Field(max_length=40)
    profile: str | None = None
    volume_ml: float
    concentration: float | None = None
    catheter_replaced: bool = False
    catheter_length_cm: float | None = None
    tip_level: str | None = None
    confirmed: bool = False
    override_reason: str | None = None
    review_token: str | None = Field(None, max_length=100, description=TOKEN)


class ClockIn(Bounded):
    step: Literal["day", "week", "next_alarm"]


class UserIn(Bounded):
    """No password: the new user sets it with the one-time setup link in the answer."""

    username: str = Field(max_length=320)
    display_name: str = Field("", max_length=200)
    role: Literal["physician", "nurse", "patient", "admin"]
    # Checked by the use case (clinic/accounts.py::patient_ref), which names the field.
    patient_id: Any = Field(None, description="patient accounts are made by the patient's "
                            "clinician: POST /patients/{id}/accounts")


class PatientAccountIn(Bounded):
    username: str = Field(max_length=320)
    display_name: str = Field("", max_length=200)


class PasswordChange(Bounded):
    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


class PasswordSet(Bounded):
    new_password: str = Field("", max_length=200)


def _review(r: Planned) -> dict[str, Any]:
    """A review as JSON: every rule's verdict by row, the overall verdict, what would be
    written, and the token the confirm must send."""
    return {"classification": r.classification.value, "reason": r.reason,
            "refused": r.refused, "needs_override": r.needs_override,
            "rows": [{"field": x.field, "current": x.current, "proposed": x.proposed,
                      "changed": x.changed,
                      "classification": x.classification.value if x.classification else None,
                      "reason": x.reason} for x in r.rows],
            "warnings": list(r.warnings),
            "verdicts": [v.to_dict() for v in r.review.verdicts],
            "decision": r.review.decision.value,
            "override": r.review.override.to_dict(),
            "stop_of_therapy": r.review.stop_of_therapy,
            "projection": r.review.projection.to_dict() if r.review.projection else None,
            "commands": [c.to_dict() for c in r.review.commands],
            "review_token": r.token}


def _record(record: dict[str, Any]) -> dict[str, Any]:
    pump = record["pump"]
    return {
        "patient": snapshot(record["patient"]),
        "withdrawal_risk": record["risk"],
        "pump": snapshot(pump) if pump else None,
        "programs": [snapshot(p) for p in record["programs"]],
        "refills": [snapshot(r) for r in record["refills"]],
        "alarms": [snapshot(a) for a in record["alarms"]],
        "screenings": [snapshot(s) for s in record["screenings"]],
        "mri": [snapshot(m) for m in record["mris"]],
        "timeline": [snapshot(v) for v in record["visits"]],
        "predicted_effect": record["predicted_effect"],
    }


def _csrf(request: Request) -> None:
    check_csrf(request)


@router.post("/auth/login", responses=ERRORS)
def login(body: Login, request: Request) -> dict[str, Any]:
    """Sign in: sets the session cookie; returns the CSRF token for unsafe requests."""
    _csrf(request)
    actor = sign_in(request, body.username, body.password)
    request.state.session = security.new_session(actor.user_id, actor.epoch)
    return {"username": actor.username, "role": actor.role, "patient_id": actor.patient_id,
            "csrf_token": request.state.session["csrf"]}


@router.get("/auth/csrf")
def csrf(request: Request) -> dict[str, str]:
    """The CSRF token of this session (a visitor gets one before signing in)."""
    return {"csrf_token": str(request.state.session["csrf"])}


@router.post("/auth/logout", responses=ERRORS)
def logout(request: Request) -> dict[str, str]:
    _csrf(request)
    actor = request.state.actor
    if actor is not None:
        with uow(request, actor) as u:
            accounts.end_sessions(u)
    request.state.session = security.new_session()
    return {"status": "signed out"}


@router.get("/me", responses=ERRORS)
def me(request: Request) -> dict[str, Any]:
    actor = signed_in(request)
    out: dict[str, Any] = {"username": actor.username, "role": actor.role,
                           "patient_id": actor.patient_id}
    if actor.role == "patient" and actor.patient_id is not None:
        with uow(request, actor) as u:
            out["record"] = _record(queries.patient_record(u, actor.patient_id))
    return out


@router.get("/dashboard", responses=ERRORS)
def dashboard(request: Request, actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [jsonable(i.__dict__) for i in queries.dashboard(u)]


@router.get("/patients", responses=ERRORS)
def patients(request: Request, q: str = "", actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [jsonable(r) for r in queries.patient_list(u, q)]


@router.post("/patients", status_code=201, responses=ERRORS)
def register(body: PatientIn, request: Request,
             actor: Actor = need("edit_patient")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.register_patient(u, body.model_dump()))


@router.get("/patients/{patient_id}", responses=ERRORS)
def patient(patient_id: int, request: Request) -> dict[str, Any]:
    actor = signed_in(request)
    with uow(request, actor) as u:
        return _record(queries.patient_record(u, patient_id))


@router.patch("/patients/{patient_id}", responses=ERRORS)
def edit(patient_id: int, body: PatientEdit, request: Request,
         actor: Actor = need("edit_patient")) -> dict[str, Any]:
    _csrf(request)
    fields = {k: v for k, v in body.model_dump().items() if v is not None and k != "version"}
    with uow(request, actor) as u:
        return snapshot(services.update_patient(u, patient_id, body.version, fields))


@router.put("/patients/{patient_id}/checklist", responses=ERRORS)
def checklist(patient_id: int, body: Checklist, request: Request,
              actor: Actor = need("checklist")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.set_checklist(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/screenings", status_code=201, responses=ERRORS)
def screening(patient_id: int, body: ScreeningIn, request: Request,
              actor: Actor = need("screening")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.record_screening(
            u, patient_id, [d.model_dump() for d in body.doses]))


@router.post("/patients/{patient_id}/implant/review", responses=ERRORS)
def implant_review(patient_id: int, body: ImplantIn, request: Request,
                   actor: Actor = need("implant")) -> dict[str, Any]:
    """What the implant would write to the new pump, with its token; nothing is written."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.implant_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/implant", status_code=201, responses=ERRORS)
def implant(patient_id: int, body: ImplantIn, request: Request,
            actor: Actor = need("implant")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.implant(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/program/review", responses=ERRORS)
def program_review(patient_id: int, body: ProgramIn, request: Request,
                   actor: Actor = need("program")) -> dict[str, Any]:
    """The side-by-side review with guardrail classes; nothing is written."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.program_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/program", status_code=201, responses=ERRORS)
def program(patient_id: int, body: ProgramIn, request: Request,
            actor: Actor = need("program")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.program(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/refill/review", responses=ERRORS)
def refill_review(patient_id: int, body: RefillIn, request: Request,
                  actor: Actor = need("refill")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        r = services.refill_review(u, patient_id, body.model_dump())
    d = r.review.fact("discrepancy") or {}
    out: dict[str, Any] = _review(r)
    out.update(jsonable({
        "expected_ml": d.get("expected_ml"), "withdrawn_ml": d.get("withdrawn_ml"),
        "discrepancy_ml": d.get("difference_ml"), "flagged": d.get("flagged"),
        "possible_causes": list(d.get("possible_causes", ())),
        "bridge": r.review.bridge.to_dict() if r.review.bridge else None}))
    return out


@router.post("/patients/{patient_id}/refill", status_code=201, responses=ERRORS)
def refill(patient_id: int, body: RefillIn, request: Request,
           actor: Actor = need("refill")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.refill(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/mri", status_code=201, responses=ERRORS)
def mri(patient_id: int, body: MriIn, request: Request,
        actor: Actor = need("mri")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.record_mri(u, patient_id, body.model_dump()))


@router.post("/mri/{mri_id}/check", responses=ERRORS)
def mri_check(mri_id: int, request: Request, actor: Actor = need("mri")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.post_mri_check(u, mri_id))


@router.post("/patients/{patient_id}/replacement", status_code=201, responses=ERRORS)
def replacement(patient_id: int, body: ReplacementIn, request: Request,
                actor: Actor = need("replacement")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.plan_replacement(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/replace/review", responses=ERRORS)
def replace_review(patient_id: int, body: ReplaceIn, request: Request,
                   actor: Actor = need("replacement")) -> dict[str, Any]:
    """What the replacement would write (old pump read, new pump planned), with its token."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.replacement_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/replace", status_code=201, responses=ERRORS)
def replace(patient_id: int, body: ReplaceIn, request: Request,
            actor: Actor = need("replacement")) -> dict[str, Any]:
    """Explant the pump and implant a new one with the same program."""
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.replace_pump(u, patient_id, body.model_dump()))


@router.get("/alarms", responses=ERRORS)
def alarms(request: Request, include_acknowledged: bool = False,
           actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [{**snapshot(a), "patient_name": n,
                 "meaning": queries.ALARM_MEANING.get(a.kind, "")}
                for a, n in queries.alarm_inbox(u, include_acknowledged)]


@router.post("/alarms/{alarm_id}/acknowledge", responses=ERRORS)
def acknowledge(alarm_id: int, body: AckIn, request: Request,
                actor: Actor = need("acknowledge")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.acknowledge_alarm(u, alarm_id, body.note))


@router.get("/clock", responses=ERRORS)
def clock(request: Request) -> dict[str, Any]:
    signed_in(request)
    with request.app.state.clinic.factory() as s:
        from openitb.clinic.clock import clinic_now

        return {"now": clinic_now(s).isoformat(), "mode": clock_mode(s)}


@router.post("/clock/advance", responses=ERRORS)
def advance(body: ClockIn, request: Request, actor: Actor = need("clock")) -> dict[str, Any]:
    _csrf(request)
    if not request.app.state.demo:
        raise RefusedOperation("the clinic clock is the wall clock outside demo mode",
                               code="forbidden")
    with uow(request, actor) as u:
        return {"now": services.advance_clock(u, body.model_dump()).isoformat()}


@router.get("/audit", responses=ERRORS)
def audit(request: Request, limit: int = 200, actor: Actor = need("audit")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [snapshot(e) for e in queries.audit_trail(u, limit)]


def _link(request: Request, token: str) -> str:
    return f"{request.app.state.base_url}/password/{token}"


@router.post("/users", status_code=201, responses=ERRORS)
def create_user(body: UserIn, request: Request,
                actor: Actor = need("accounts")) -> dict[str, Any]:
    """A staff or administrator account; answers its one-time setup link (shown once)."""
    _csrf(request)
    with uow(request, actor) as u:
        user = accounts.create_user(u, body.username, body.display_name, body.role, None,
                                    body.patient_id)
        token = accounts.issue_link(u, user.id, "setup")
        return {**snapshot(user), "setup_link": _link(request, token)}


@router.post("/users/{user_id}/reset-link", status_code=201, responses=ERRORS)
def reset_link(user_id: int, request: Request,
               actor: Actor = need("accounts")) -> dict[str, Any]:
    """A one-time link with which the user sets a new password (24 h); earlier links stop."""
    _csrf(request)
    with uow(request, actor) as u:
        return {"reset_link": _link(request, accounts.issue_link(u, user_id, "reset"))}


@router.post("/patients/{patient_id}/accounts", status_code=201, responses=ERRORS)
def patient_account(patient_id: int, body: PatientAccountIn, request: Request,
                    actor: Actor = need("link_patient")) -> dict[str, Any]:
    """The patient's clinician links a patient or caregiver account to the patient."""
    _csrf(request)
    with uow(request, actor) as u:
        user, token = accounts.create_patient_account(u, patient_id, body.username,
                                                      body.display_name)
        return {**snapshot(user), "setup_link": _link(request, token)}


@router.post("/me/password", responses=ERRORS)
def change_password(body: PasswordChange, request: Request,
                    actor: Actor = Depends(signed_in)) -> dict[str, Any]:
    """Change one's own password: every session ends (this one is renewed; use the new CSRF
    token), the calendar feed token is revoked."""
    with uow(request, actor) as u:
        renewed = accounts.change_password(u, body.current_password, body.new_password)
    request.state.session = security.new_session(renewed.user_id, renewed.epoch)
    return {"status": "password changed", "csrf_token": request.state.session["csrf"]}


@router.post("/password/{token}", responses=ERRORS)
def use_password_link(token: str, body: PasswordSet, request: Request) -> dict[str, str]:
    """Set a password with a one-time link (setup or reset)."""
    with uow(request, request.state.actor or Actor("anonymous", "anonymous")) as u:
        user = accounts.use_link(u, token, body.new_password)
        return {"status": "password set", "username": user.username}


@router.post("/me/calendar-feed", status_code=201, responses=ERRORS)
def issue_feed(request: Request, actor: Actor = need("view_clinic")) -> dict[str, str]:
    """A new personal calendar feed address (the old one stops working); shown once."""
    with uow(request, actor) as u:
        token = accounts.issue_feed_token(u)
    return {"url": f"{request.app.state.base_url}/calendar/{token}/refills.ics"}


@router.delete("/me/calendar-feed", responses=ERRORS)
def revoke_feed(request: Request, actor: Actor = need("view_clinic")) -> dict[str, str]:
    with uow(request, actor) as u:
        accounts.revoke_feed_token(u)
    return {"status": "revoked"}


@router.get("/patients/{patient_id}/fhir", responses={**ERRORS, **FHIR_RESPONSES},
            response_class=Response)
def fhir_bundle(patient_id: int, request: Request, type: str = "collection") -> Response:
    """The patient's record as one FHIR Bundle: R5 unless ``fhirVersion=4.0`` is asked for (in
    Accept or the query); ``type=transaction`` for a Bundle a FHIR server accepts as a POST."""
    from openitb.web.fhir_api import export_response

    return export_response(request, patient_id, type)


@router.get("/calendar/refills.ics", responses=ERRORS)
def refill_feed(request: Request, actor: Actor = need("view_clinic")) -> Response:
    """iCalendar feed of refill appointments (one all-day event per pump, on its refill-by
    date, with a reminder 3 days before)."""
    from openitb.interop.ical import feed

    with uow(request, actor) as u:
        body = feed(u.session, queries.refill_appointments(u), now=u.now)
    return Response(body, media_type="text/calendar")
