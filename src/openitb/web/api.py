"""The JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json).

Authentication is the same signed session cookie as the pages (POST /api/v1/auth/login), and
every unsafe request carries the CSRF token in the ``X-CSRF-Token`` header; or a personal access
token (``Authorization: Bearer``, clinic/api_tokens.py), with no CSRF header. Every answer is a
model of web/schemas.py; every refusal the one ``Error`` shape. Permission is checked
before the body is read (403 for a role that may not act), and again by the use case."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from openitb.clinic import accounts, api_tokens, queries, services
from openitb.clinic.clock import clock_mode
from openitb.clinic.driving import Planned
from openitb.clinic.uow import Actor, jsonable, snapshot
from openitb.errors import RefusedOperation
from openitb.web import schemas as S
from openitb.web import security
from openitb.web.deps import by_bearer, check_csrf, need, sign_in, signed_in, uow
from openitb.web.fhir_api import FHIR_RESPONSES
from openitb.web.schemas import errors

# Operation ids are the function names, so a generated client reads `program_review.sync(...)`.
router = APIRouter(prefix="/api/v1", tags=["clinic"],
                   generate_unique_id_function=lambda route: route.name)


# Every operation may meet these (web/app.py): 401 no session or token, 403 a role or CSRF,
# 404, 409 a conflict, 413 a body too large, 422 an invalid field or a refused use case.
ERRORS = errors(401, 403, 404, 409, 413, 422)
PUBLIC = errors(403, 413, 422)
LOGIN = errors(401, 403, 413, 422, 429)  # 429: too many failed sign-ins  # no sign-in needed (403: the CSRF token of the session)


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
    phone: str = Field("", max_length=40, description="the patient's own phone, e.g. +44 20 7946 0958")


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
    phone: str | None = Field(None, max_length=40)


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
    mas_before: dict[str, float | str] = Field(
        description="Modified Ashworth grade by muscle group: 0, 1, \"1+\" (or 1.5), 2, 3, 4")
    mas_after: dict[str, float | str] = Field(description="as mas_before, after the bolus")


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


@router.post("/auth/login", response_model=S.SignedIn, responses=LOGIN)
def login(body: Login, request: Request) -> dict[str, Any]:
    """Sign in: sets the session cookie; returns the CSRF token for unsafe requests."""
    _csrf(request)
    actor = sign_in(request, body.username, body.password)
    request.state.session = security.new_session(actor.user_id, actor.epoch)
    return {"username": actor.username, "role": actor.role, "patient_id": actor.patient_id,
            "csrf_token": request.state.session["csrf"]}


@router.get("/auth/csrf", response_model=S.Csrf, responses=ERRORS)
def csrf(request: Request) -> dict[str, str]:
    """The CSRF token of this session (a visitor gets one before signing in)."""
    return {"csrf_token": str(request.state.session["csrf"])}


@router.post("/auth/logout", response_model=S.Status, responses=PUBLIC)
def logout(request: Request) -> dict[str, str]:
    _csrf(request)
    actor = request.state.actor
    if actor is not None:
        with uow(request, actor) as u:
            accounts.end_sessions(u)
    request.state.session = security.new_session()
    return {"status": "signed out"}


@router.get("/me", response_model=S.Me, responses=ERRORS)
def me(request: Request) -> dict[str, Any]:
    actor = signed_in(request)
    out: dict[str, Any] = {"username": actor.username, "role": actor.role,
                           "patient_id": actor.patient_id}
    if actor.role == "patient" and actor.patient_id is not None:
        with uow(request, actor) as u:
            out["record"] = _record(queries.patient_record(u, actor.patient_id))
    return out


@router.get("/dashboard", response_model=list[S.DashboardItem], responses=ERRORS)
def dashboard(request: Request, actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [jsonable(i.__dict__) for i in queries.dashboard(u)]


@router.get("/patients", response_model=list[S.PatientListItem], responses=ERRORS)
def patients(request: Request, q: str = "", actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [jsonable(r) for r in queries.patient_list(u, q)]


@router.post("/patients", response_model=S.PatientOut, status_code=201, responses=ERRORS)
def register(body: PatientIn, request: Request,
             actor: Actor = need("edit_patient")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.register_patient(u, body.model_dump()))


@router.get("/patients/{patient_id}", response_model=S.PatientRecord, responses=ERRORS)
def patient(patient_id: int, request: Request) -> dict[str, Any]:
    actor = signed_in(request)
    with uow(request, actor) as u:
        return _record(queries.patient_record(u, patient_id))


@router.patch("/patients/{patient_id}", response_model=S.PatientOut, responses=ERRORS)
def edit(patient_id: int, body: PatientEdit, request: Request,
         actor: Actor = need("edit_patient")) -> dict[str, Any]:
    _csrf(request)
    fields = {k: v for k, v in body.model_dump().items() if v is not None and k != "version"}
    with uow(request, actor) as u:
        return snapshot(services.update_patient(u, patient_id, body.version, fields))


@router.put("/patients/{patient_id}/checklist", response_model=S.PatientOut, responses=ERRORS)
def checklist(patient_id: int, body: Checklist, request: Request,
              actor: Actor = need("checklist")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.set_checklist(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/screenings", response_model=S.ScreeningOut, status_code=201, responses=ERRORS)
def screening(patient_id: int, body: ScreeningIn, request: Request,
              actor: Actor = need("screening")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.record_screening(
            u, patient_id, [d.model_dump() for d in body.doses]))


@router.post("/patients/{patient_id}/implant/review", response_model=S.ReviewOut, responses=ERRORS)
def implant_review(patient_id: int, body: ImplantIn, request: Request,
                   actor: Actor = need("implant")) -> dict[str, Any]:
    """What the implant would write to the new pump, with its token; nothing is written."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.implant_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/implant", response_model=S.PumpOut, status_code=201, responses=ERRORS)
def implant(patient_id: int, body: ImplantIn, request: Request,
            actor: Actor = need("implant")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.implant(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/program/review", response_model=S.ReviewOut, responses=ERRORS)
def program_review(patient_id: int, body: ProgramIn, request: Request,
                   actor: Actor = need("program")) -> dict[str, Any]:
    """The side-by-side review with guardrail classes; nothing is written."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.program_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/program", response_model=S.ProgramOut, status_code=201, responses=ERRORS)
def program(patient_id: int, body: ProgramIn, request: Request,
            actor: Actor = need("program")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.program(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/refill/review", response_model=S.RefillReviewOut, responses=ERRORS)
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


@router.post("/patients/{patient_id}/refill", response_model=S.RefillOut, status_code=201, responses=ERRORS)
def refill(patient_id: int, body: RefillIn, request: Request,
           actor: Actor = need("refill")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.refill(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/mri", response_model=S.MriOut, status_code=201, responses=ERRORS)
def mri(patient_id: int, body: MriIn, request: Request,
        actor: Actor = need("mri")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.record_mri(u, patient_id, body.model_dump()))


@router.post("/mri/{mri_id}/check", response_model=S.MriOut, responses=ERRORS)
def mri_check(mri_id: int, request: Request, actor: Actor = need("mri")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.post_mri_check(u, mri_id))


@router.post("/patients/{patient_id}/replacement", response_model=S.VisitOut, status_code=201, responses=ERRORS)
def replacement(patient_id: int, body: ReplacementIn, request: Request,
                actor: Actor = need("replacement")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.plan_replacement(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/replace/review", response_model=S.ReviewOut, responses=ERRORS)
def replace_review(patient_id: int, body: ReplaceIn, request: Request,
                   actor: Actor = need("replacement")) -> dict[str, Any]:
    """What the replacement would write (old pump read, new pump planned), with its token."""
    _csrf(request)
    with uow(request, actor) as u:
        return _review(services.replacement_review(u, patient_id, body.model_dump()))


@router.post("/patients/{patient_id}/replace", response_model=S.PumpOut, status_code=201, responses=ERRORS)
def replace(patient_id: int, body: ReplaceIn, request: Request,
            actor: Actor = need("replacement")) -> dict[str, Any]:
    """Explant the pump and implant a new one with the same program."""
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.replace_pump(u, patient_id, body.model_dump()))


@router.get("/alarms", response_model=list[S.InboxAlarm], responses=ERRORS)
def alarms(request: Request, include_acknowledged: bool = False,
           actor: Actor = need("view_clinic")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [{**snapshot(a), "patient_name": n,
                 "meaning": queries.ALARM_MEANING.get(a.kind, "")}
                for a, n in queries.alarm_inbox(u, include_acknowledged)]


@router.post("/alarms/{alarm_id}/acknowledge", response_model=S.AlarmOut, responses=ERRORS)
def acknowledge(alarm_id: int, body: AckIn, request: Request,
                actor: Actor = need("acknowledge")) -> dict[str, Any]:
    _csrf(request)
    with uow(request, actor) as u:
        return snapshot(services.acknowledge_alarm(u, alarm_id, body.note))


@router.get("/clock", response_model=S.Clock, responses=ERRORS)
def clock(request: Request) -> dict[str, Any]:
    signed_in(request)
    with request.app.state.clinic.factory() as s:
        from openitb.clinic.clock import clinic_now

        return {"now": clinic_now(s).isoformat(), "mode": clock_mode(s)}


@router.post("/clock/advance", response_model=S.Clock, responses=ERRORS)
def advance(body: ClockIn, request: Request, actor: Actor = need("clock")) -> dict[str, Any]:
    _csrf(request)
    if not request.app.state.demo:
        raise RefusedOperation("the clinic clock is the wall clock outside demo mode",
                               code="forbidden")
    with uow(request, actor) as u:
        return {"now": services.advance_clock(u, body.model_dump()).isoformat()}


@router.get("/audit", response_model=list[S.AuditRow], responses=ERRORS)
def audit(request: Request, limit: int = 200, actor: Actor = need("audit")) -> list[dict[str, Any]]:
    with uow(request, actor) as u:
        return [snapshot(e) for e in queries.audit_trail(u, limit)]


def _link(request: Request, token: str) -> str:
    return f"{request.app.state.base_url}/password/{token}"


@router.post("/users", response_model=S.UserCreated, status_code=201, responses=ERRORS)
def create_user(body: UserIn, request: Request,
                actor: Actor = need("accounts")) -> dict[str, Any]:
    """A staff or administrator account; answers its one-time setup link (shown once)."""
    _csrf(request)
    with uow(request, actor) as u:
        user = accounts.create_user(u, body.username, body.display_name, body.role, None,
                                    body.patient_id)
        token = accounts.issue_link(u, user.id, "setup")
        return {**snapshot(user), "setup_link": _link(request, token)}


@router.post("/users/{user_id}/reset-link", response_model=S.ResetLink, status_code=201, responses=ERRORS)
def reset_link(user_id: int, request: Request,
               actor: Actor = need("accounts")) -> dict[str, Any]:
    """A one-time link with which the user sets a new password (24 h); earlier links stop."""
    _csrf(request)
    with uow(request, actor) as u:
        return {"reset_link": _link(request, accounts.issue_link(u, user_id, "reset"))}


@router.post("/patients/{patient_id}/accounts", response_model=S.UserCreated, status_code=201, responses=ERRORS)
def patient_account(patient_id: int, body: PatientAccountIn, request: Request,
                    actor: Actor = need("link_patient")) -> dict[str, Any]:
    """The patient's clinician links a patient or caregiver account to the patient."""
    _csrf(request)
    with uow(request, actor) as u:
        user, token = accounts.create_patient_account(u, patient_id, body.username,
                                                      body.display_name)
        return {**snapshot(user), "setup_link": _link(request, token)}


@router.post("/me/password", response_model=S.PasswordChanged, responses=ERRORS)
def change_password(body: PasswordChange, request: Request,
                    actor: Actor = Depends(signed_in)) -> dict[str, Any]:
    """Change one's own password: every session ends (this one is renewed; use the new CSRF
    token), the calendar feed token is revoked."""
    with uow(request, actor) as u:
        renewed = accounts.change_password(u, body.current_password, body.new_password)
    request.state.session = security.new_session(renewed.user_id, renewed.epoch)
    return {"status": "password changed", "csrf_token": request.state.session["csrf"]}


@router.post("/password/{token}", response_model=S.PasswordSetDone, responses=PUBLIC)
def use_password_link(token: str, body: PasswordSet, request: Request) -> dict[str, str]:
    """Set a password with a one-time link (setup or reset)."""
    with uow(request, request.state.actor or Actor("anonymous", "anonymous")) as u:
        user = accounts.use_link(u, token, body.new_password)
        return {"status": "password set", "username": user.username}


@router.post("/me/calendar-feed", response_model=S.FeedUrl, status_code=201, responses=ERRORS)
def issue_feed(request: Request, actor: Actor = need("view_clinic")) -> dict[str, str]:
    """A new personal calendar feed address (the old one stops working); shown once."""
    with uow(request, actor) as u:
        token = accounts.issue_feed_token(u)
    return {"url": f"{request.app.state.base_url}/calendar/{token}/refills.ics"}


@router.delete("/me/calendar-feed", response_model=S.Status, responses=ERRORS)
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


ICS: dict[int | str, dict[str, Any]] = {200: {"content": {"text/calendar": {"schema": {"type": "string"}}},
             "description": "an iCalendar file (RFC 5545), not JSON"}}
PDF: dict[int | str, dict[str, Any]] = {200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
             "description": "a PDF document"}}


@router.get("/calendar/refills.ics", responses={**ERRORS, **ICS}, response_class=Response)
def refill_feed(request: Request, actor: Actor = need("view_clinic")) -> Response:
    """iCalendar feed of refill appointments (one all-day event per pump, on its refill-by
    date, with a reminder 3 days before)."""
    from openitb.interop.ical import feed

    with uow(request, actor) as u:
        body = feed(u.session, queries.refill_appointments(u), now=u.now)
    return Response(body, media_type="text/calendar")


@router.get("/calendar/{token}/refills.ics", responses={**errors(404, 422), **ICS},
            response_class=Response)
def refill_feed_by_token(token: str, request: Request) -> Response:
    """The personal feed (``POST /me/calendar-feed``) for calendar clients, which send no
    cookie: the token in the path names the user. The address handed out is the same feed
    without the ``/api/v1`` prefix."""
    from openitb.web.pages import calendar_by_token

    return calendar_by_token(request, token)


@router.get("/patients/{patient_id}/wallet-card.pdf", responses={**ERRORS, **PDF},
            response_class=Response)
def wallet_card(patient_id: int, request: Request) -> Response:
    """The emergency wallet card, as printed from the patient's page."""
    from openitb.web.pages import wallet_card as page

    return page(request, str(patient_id))


@router.get("/patients/{patient_id}/summary.pdf", responses={**ERRORS, **PDF},
            response_class=Response)
def therapy_summary(patient_id: int, request: Request) -> Response:
    """The therapy summary (program, pump, refills, alarms) as a PDF."""
    from openitb.web.pages import therapy_summary as page

    return page(request, str(patient_id))


@router.get("/patients/{patient_id}/refill.ics", responses={**ERRORS, **ICS},
            response_class=Response)
def own_refill_event(patient_id: int, request: Request) -> Response:
    """The patient's next refill as one iCalendar event (for the patient's own calendar)."""
    from openitb.web.pages import own_refill_event as page

    return page(request, str(patient_id))


# ---- personal access tokens (clinic/api_tokens.py) ---------------------------------------------
class TokenIn(Bounded):
    name: str = Field(max_length=80, description="what the token is for, e.g. 'EHR sync'")
    expires_in_days: int | None = Field(
        None, ge=1, le=api_tokens.MAX_DAYS,
        description=f"1 to {api_tokens.MAX_DAYS} days (default {api_tokens.DEFAULT_DAYS})")


def _token_out(row: Any, role: str) -> dict[str, Any]:
    return {**snapshot(row, exclude=("token_hash",)), "role": role}


@router.get("/me/tokens", response_model=list[S.ApiTokenOut], responses=ERRORS)
def list_tokens(request: Request, actor: Actor = Depends(signed_in)) -> list[dict[str, Any]]:
    """One's personal access tokens, newest first (never their secret)."""
    with uow(request, actor) as u:
        return [_token_out(t, actor.role) for t in api_tokens.listed(u)]


@router.post("/me/tokens", response_model=S.ApiTokenCreated, status_code=201,
             responses=ERRORS)
def create_token(body: TokenIn, request: Request,
                 actor: Actor = Depends(signed_in)) -> dict[str, Any]:
    """A personal access token for an API client (``Authorization: Bearer <token>``, and no
    CSRF header then): it can do what your role can, until it expires or is revoked. Shown
    once; made only from a signed-in session (a token cannot make tokens)."""
    _csrf(request)
    with uow(request, actor) as u:
        row, token = api_tokens.create(u, body.name, body.expires_in_days,
                                       by_session=not by_bearer(request))
        return {**_token_out(row, actor.role), "token": token}


@router.delete("/me/tokens/{token_id}", response_model=S.ApiTokenOut, responses=ERRORS)
def revoke_token(token_id: int, request: Request,
                 actor: Actor = Depends(signed_in)) -> dict[str, Any]:
    """Revoke one of your tokens: the next request with it is refused (401)."""
    _csrf(request)
    with uow(request, actor) as u:
        return _token_out(api_tokens.revoke(u, token_id), actor.role)


# ---- the OpenAPI document: how to authenticate ---------------------------------------------------
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "session": {"type": "apiKey", "in": "cookie", "name": security.COOKIE,
                "description": "The browser session: GET /api/v1/auth/csrf, then POST "
                "/api/v1/auth/login. The server sets this cookie (HttpOnly, signed, 12 h) and "
                "renews it: a client must keep one cookie jar for all its requests (one HTTP "
                "client; a copy made with other headers loses it). Sign-out ends it."},
    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
             "description": "With the session, every unsafe request (POST, PUT, PATCH, "
             "DELETE) carries the session's CSRF token (from /auth/csrf, renewed by "
             "/auth/login and /me/password). Not needed with a bearer token."},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "A personal access token (POST /api/v1/me/tokens from a "
               "signed-in session, or the account page): acts as its owner with the owner's "
               "role; no cookie and no CSRF header. Unknown, revoked or expired: 401."},
}
CSRF_PARAMETER = {
    "name": "X-CSRF-Token", "in": "header", "required": False,
    "schema": {"type": "string", "maxLength": 100},
    "description": "the session's CSRF token (required with the session cookie; not with a "
    "bearer token)"}
# Operations open to anyone (no session or token): the visitor's CSRF token and the calendar
# feed by its secret address.
OPEN = {("get", "/api/v1/auth/csrf"), ("get", "/api/v1/calendar/{token}/refills.ics")}
# A visitor's session and its CSRF token, no account: signing in, a password link.
VISITOR = {("post", "/api/v1/auth/login"), ("post", "/api/v1/password/{token}")}


def openapi_document(app: Any) -> dict[str, Any]:
    """FastAPI's document with the security schemes and each operation's requirement."""
    if app.openapi_schema:
        return dict(app.openapi_schema)
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if (method, path) in OPEN:
                op["security"] = []
            elif (method, path) in VISITOR:
                op["security"] = [{"session": [], "csrf": []}]
            elif method in ("get", "head"):
                op["security"] = [{"session": []}, {"bearer": []}]
            else:
                op["security"] = [{"session": [], "csrf": []}, {"bearer": []}]
            if method not in ("get", "head"):  # so that a generated client can send it
                op.setdefault("parameters", []).append(CSRF_PARAMETER)
    app.openapi_schema = doc
    return doc
