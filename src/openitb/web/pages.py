"""Server-rendered pages (Jinja2 + htmx). Every form carries the CSRF token; every page checks
the role before it reads anything, and the use cases check again."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from openitb.clinic import accounts, labels, queries, services
from openitb.clinic.uow import Actor, brief
from openitb.devices import load_catalog
from openitb.drugs import load_library
from openitb.errors import InvalidInput, InvalidInputs, OpenITBError, RefusedOperation
from openitb.therapy.screening import MAS_GRADES
from openitb.web import charts, security
from openitb.web.deps import check_csrf, need, sign_in, signed_in, uow

router = APIRouter(include_in_schema=False)
ECHO_CHARS = 500  # what a form shown again holds of a value typed into it


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    from openitb.web.app import templates

    actor: Actor | None = request.state.actor
    base = {"actor": actor, "csrf": request.state.session.get("csrf"),
            "demo": request.app.state.demo, "path": request.url.path,
            "flash": security.take_flash(request.state.session)}
    now = getattr(request.state, "clinic_now", None)
    if now is None:
        with request.app.state.clinic.factory() as s:
            from openitb.clinic.clock import clinic_now

            now = clinic_now(s)
    base["clinic_now"] = now
    if isinstance(context.get("values"), Mapping):  # a form shown again: bounded echo
        context = {**context, "values": {k: v[:ECHO_CHARS] if isinstance(v, str) else v
                                         for k, v in context["values"].items()}}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


async def form_of(request: Request) -> dict[str, Any]:
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(request, data.get("csrf_token"))
    return data


def error_text(exc: OpenITBError) -> str:
    """The one wording of an error on a page: a bad input names its field by its label and
    says what is allowed ("Note is required (at least 3 characters, saying what was done).")."""
    if isinstance(exc, InvalidInputs):
        return " ".join(error_text(e) for e in exc.errors)
    if isinstance(exc, InvalidInput):
        return exc.sentence(labels.field_label(exc.field))
    if isinstance(exc, RefusedOperation):
        return exc.reason
    return str(exc)


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    if not url:
        return "/"
    parsed = urlparse(url)
    if parsed.scheme or parsed.netloc or not url.startswith("/") or url.startswith("//"):
        return "/"
    return url


# ---- sign in and out -------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
async def login(request: Request) -> Response:
    data = await form_of(request)
    try:
        actor = sign_in(request, data.get("username", ""), data.get("password", ""))
    except RefusedOperation as exc:
        return render(request, "login.html", {"next": safe_next(data.get("next")),
                                              "error": exc.reason},
                      status=429 if exc.code == "throttled" else 401)
    request.state.session = security.new_session(actor.user_id, actor.epoch)
    return redirect(safe_next(data.get("next")))


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form_of(request)
    actor = request.state.actor
    if actor is not None:
        with uow(request, actor) as u:
            accounts.end_sessions(u)
    request.state.session = security.new_session()
    return redirect("/login")


def _feed_page(request: Request, actor: Actor, token: str | None) -> Response:
    url = f"{request.app.state.base_url}/calendar/{token}/refills.ics" if token else None
    return render(request, "feed.html", {"url": url})


@router.post("/calendar-feed")
async def calendar_feed(request: Request, actor: Actor = need("view_clinic")) -> Response:
    """Issue (or rotate: the old address stops working) the personal feed address; it is
    shown this once, on the configured base URL (OPENITB_BASE_URL), never the Host header."""
    await form_of(request)
    with uow(request, actor) as u:
        token = accounts.issue_feed_token(u)
    return _feed_page(request, actor, token)


@router.post("/calendar-feed/revoke")
async def calendar_feed_revoke(request: Request, actor: Actor = need("view_clinic")) -> Response:
    await form_of(request)
    with uow(request, actor) as u:
        accounts.revoke_feed_token(u)
    security.flash(request.state.session, "Calendar feed revoked: its address no longer works.")
    return redirect("/account")


# ---- own account, password links -------------------------------------------------------------
@router.get("/account")
def account(request: Request) -> Response:
    actor = signed_in(request)
    with uow(request, actor) as u:
        feed = accounts.has_feed(u)
    return render(request, "account.html", {"has_feed": feed, "error": None})


@router.post("/account/password")
async def change_password(request: Request) -> Response:
    """Change one's own password: every session ends (this one is renewed), the calendar feed
    token is revoked."""
    actor = signed_in(request)
    data = await form_of(request)
    try:
        if data.get("new_password") != data.get("confirm_password"):
            raise InvalidInput("confirm_password", "a different password",
                               "the new password typed twice")
        with uow(request, actor) as u:
            renewed = accounts.change_password(u, data.get("current_password", ""),
                                               data.get("new_password", ""))
    except OpenITBError as exc:
        with uow(request, actor) as u:
            feed = accounts.has_feed(u)
        return render(request, "account.html", {"has_feed": feed, "error": error_text(exc)},
                      status=403 if getattr(exc, "code", "") == "forbidden" else 422)
    request.state.session = security.new_session(renewed.user_id, renewed.epoch)
    security.flash(request.state.session, "Password changed: every other session has ended "
                   "and the calendar feed address was revoked.")
    return redirect("/account")


@router.get("/password/{token}")
def password_link_form(request: Request, token: str) -> Response:
    with request.app.state.clinic.factory() as s:
        user = accounts.link_user(s, token)
    if user is None:
        raise RefusedOperation(accounts.LINK_INVALID, code="not_found")
    return render(request, "password_link.html", {"username": user.username, "token": token,
                                                   "error": None})


@router.post("/password/{token}")
async def password_link(request: Request, token: str) -> Response:
    """Set the password with a one-time link (a new account's setup, or a reset)."""
    data = await form_of(request)
    try:
        if data.get("new_password") != data.get("confirm_password"):
            raise InvalidInput("confirm_password", "a different password",
                               "the new password typed twice")
        with uow(request, request.state.actor or Actor("anonymous", "anonymous")) as u:
            user = accounts.use_link(u, token, data.get("new_password", ""))
    except InvalidInput as exc:
        with request.app.state.clinic.factory() as s:
            found = accounts.link_user(s, token)
        if found is None:
            raise RefusedOperation(accounts.LINK_INVALID, code="not_found") from None
        return render(request, "password_link.html", {"username": found.username,
                                                       "token": token,
                                                       "error": error_text(exc)}, status=422)
    request.state.session = security.new_session()
    security.flash(request.state.session, f"Password set for {user.username}: sign in with it.")
    return redirect("/login")


@router.get("/calendar/{token}/refills.ics")
def calendar_by_token(request: Request, token: str) -> Response:
    """For calendar clients, which send no cookie: the token in the URL names the user."""
    from openitb.interop.ical import feed

    with request.app.state.clinic.factory() as s:
        actor = accounts.actor_for_feed(s, token)
    if actor is None:
        raise RefusedOperation("no calendar feed at this address", code="not_found")
    with uow(request, actor) as u:
        body = feed(u.session, queries.refill_appointments(u), now=u.now)
    return Response(body, media_type="text/calendar")


# ---- dashboard, patients ---------------------------------------------------------------------
DASHBOARD_PAGE = 100


@router.get("/")
def home(request: Request, page: int = 1) -> Response:
    actor = signed_in(request)
    if actor.role == "patient":
        return redirect("/me")
    if actor.role == "admin":
        return redirect("/admin")
    page = max(1, min(page, 10**6))
    with uow(request, actor) as u:
        shown, total = queries.dashboard_page(u, (page - 1) * DASHBOARD_PAGE, DASHBOARD_PAGE)
    pages = max(1, -(-total // DASHBOARD_PAGE))
    if page > pages:
        return redirect(f"/?page={pages}")
    return render(request, "dashboard.html", {"items": shown, "total": total,
                                              "page": page, "pages": pages})


@router.get("/patients")
def patient_list(request: Request, q: str = "", sort: str = "name", dir: str = "asc",
                 page: int = 1, actor: Actor = need("view_clinic")) -> Response:
    sort = sort if sort in queries.PATIENT_SORTS else "name"  # a stale link: the default
    descending = dir == "desc"
    page = max(1, min(page, 10**6))
    size = queries.PATIENT_PAGE
    with uow(request, actor) as u:
        rows, total = queries.patient_page(u, q, size, sort=sort, descending=descending,
                                           offset=(page - 1) * size)
    pages = max(1, -(-total // size))
    name = "_patient_rows.html" if request.headers.get("hx-request") else "patients.html"
    return render(request, name, {"rows": rows, "q": q, "sort": sort, "descending": descending,
                                  "page": page, "pages": pages, "total": total})


@router.get("/patients/new")
def patient_new_form(request: Request, actor: Actor = need("edit_patient")) -> Response:
    return render(request, "patient_form.html", {"values": {}, "error": None})


@router.post("/patients/new")
async def patient_new(request: Request, actor: Actor = need("edit_patient")) -> Response:
    data = await form_of(request)
    try:
        with uow(request, actor) as u:
            p = services.register_patient(u, data)
    except OpenITBError as exc:
        return render(request, "patient_form.html", {"values": data, "error": error_text(exc)},
                      status=422)
    return redirect(f"/patients/{p.id}")


def timeline_size(raw: str | None) -> int:
    """How many timeline entries the patient page shows (``?timeline=``, from its "show older
    entries" link): the newest queries.TIMELINE_PAGE unless asked for more."""
    if raw is None or raw == "":
        return queries.TIMELINE_PAGE
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6) \
            or not 1 <= int(text) <= queries.TIMELINE_MAX:
        raise InvalidInput("timeline", brief(raw, 40),
                           f"a whole number of entries from 1 to {queries.TIMELINE_MAX}")
    return int(text)


@router.get("/patients/{patient_id}")
def patient_page(request: Request, patient_id: str, timeline: str | None = None) -> Response:
    actor = signed_in(request)
    size = timeline_size(timeline)
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id, timeline=size)
    if actor.role == "patient":
        return render(request, "me.html", own_view(record))
    notice = None
    refilled = request.query_params.get("refilled")
    if refilled and record["refills"] and str(record["refills"][-1].id) == refilled:
        last = record["refills"][-1]
        notice = (f"Refill recorded: {last.volume_ml:g} mL at {last.concentration:g} mcg/mL"
                  + ("; bridge bolus started" if last.bridge else "")
                  + (f"; next refill by {last.refill_by:%Y-%m-%d}" if last.refill_by else ""))
    return render(request, "patient.html", {
        **record, "notice": notice, "reservoir_chart": charts.reservoir_svg(record),
        "dose_chart": charts.dose_svg(record), "checklist_items": services.CHECKLIST,
        "error": None})  # messages come by flash (session), never from the URL


def own_view(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "meaning": queries.ALARM_MEANING, "titles": queries.ALARM_TITLE,
            "withdrawal_signs": queries.WITHDRAWAL_SIGNS,
            "overdose_signs": queries.OVERDOSE_SIGNS,
            "open_alarms": [a for a in record["alarms"] if a.cleared_at is None]}


@router.get("/me")
def me(request: Request, actor: Actor = need("view_own")) -> Response:
    if actor.patient_id is None:
        raise RefusedOperation("this account is not linked to a patient", code="not_found")
    with uow(request, actor) as u:
        record = queries.patient_record(u, actor.patient_id)
    return render(request, "me.html", own_view(record))


@router.post("/patients/{patient_id}/edit")
async def patient_edit(request: Request, patient_id: str,
                       actor: Actor = need("edit_patient")) -> Response:
    data = await form_of(request)
    for key in ("risk_high_injury", "risk_communication", "risk_prior_withdrawal"):
        data.setdefault(key, "off")  # an unchecked box is not sent
    try:
        with uow(request, actor) as u:
            services.update_patient(u, patient_id, data.get("version"), data)
    except OpenITBError as exc:
        return render(request, "error.html", {"title": "Not saved", "message": error_text(exc),
                                              "back": f"/patients/{patient_id}"},
                      status=409 if getattr(exc, "code", "") == "conflict" else 422)
    return redirect(f"/patients/{patient_id}")


@router.post("/patients/{patient_id}/checklist")
async def checklist(request: Request, patient_id: str,
                    actor: Actor = need("checklist")) -> Response:
    data = await form_of(request)
    with uow(request, actor) as u:
        services.set_checklist(u, patient_id, data)
    return redirect(f"/patients/{patient_id}")


# ---- screening, implant ----------------------------------------------------------------------
SCREENING_DOSES = (50, 75, 100)  # the form's three rows; the protocol itself is checked by the core


def _screening_doses(data: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[int]]:
    """The doses ticked as given, and for each its row of the form (to put errors back)."""
    doses, rows = [], []
    for i, dose in enumerate(SCREENING_DOSES):
        if data.get(f"given_{i}") != "on":
            continue
        before = {g: data[f"before_{i}_{g}"] for g in services.MUSCLE_GROUPS
                  if data.get(f"before_{i}_{g}", "").strip()}
        after = {g: data[f"after_{i}_{g}"] for g in services.MUSCLE_GROUPS
                 if data.get(f"after_{i}_{g}", "").strip()}
        doses.append({"dose_mcg": dose, "effect_hours": data.get(f"effect_{i}") or 0,
                      "mas_before": before, "mas_after": after})
        rows.append(i)
    return doses, rows


_DOSE_FIELD = re.compile(r"^doses\[(\d+)\](?:\.(\w+))?(?:\.(\w+))?$")


def _screening_field(exc: InvalidInput, rows: list[int]) -> tuple[str, str]:
    """The form input an error of the screening belongs to, and its sentence named for it."""
    m = _DOSE_FIELD.match(exc.field)
    if not m or int(m.group(1)) >= len(rows):
        return "given_0", exc.sentence(labels.field_label(exc.field))
    i = rows[int(m.group(1))]
    bolus = f"the {SCREENING_DOSES[i]} mcg bolus"
    part, group = m.group(2), m.group(3)
    if part in ("mas_before", "mas_after") and group in services.MUSCLE_GROUPS:
        side = "before" if part == "mas_before" else "after"
        return (f"{side}_{i}_{group}",
                exc.sentence(f"{labels.human(group, 'muscle_group')}, MAS {side} {bolus}"))
    if part in ("mas_before", "mas_after"):
        return (f"before_{i}_{services.MUSCLE_GROUPS[0]}",
                InvalidInput(exc.field, exc.given, "at least one muscle group, before and after")
                .sentence(f"A grade for {bolus}"))
    if part == "effect_hours":
        return f"effect_{i}", exc.sentence(f"Effect lasted after {bolus}")
    return f"given_{i}", exc.sentence(bolus[:1].upper() + bolus[1:])


def _screening_errors(exc: OpenITBError, rows: list[int]) -> tuple[dict[str, str], str | None]:
    """Errors by form input (shown beside each, and linked from the summary), or one message
    when the refusal belongs to no field (e.g. the patient's stage)."""
    if not isinstance(exc, InvalidInput):
        return {}, error_text(exc)
    fields: dict[str, str] = {}
    for e in exc.errors if isinstance(exc, InvalidInputs) else [exc]:
        name, text = _screening_field(e, rows)
        fields.setdefault(name, text)
    return fields, None


def _screening_page(request: Request, actor: Actor, patient_id: str, values: dict[str, Any],
                    field_errors: dict[str, str], error: str | None,
                    status: int = 200) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "screening.html", {
        **record, "groups": services.MUSCLE_GROUPS, "doses": SCREENING_DOSES,
        "grades": MAS_GRADES, "values": values, "field_errors": field_errors,
        "error": error}, status=status)


@router.get("/patients/{patient_id}/screening")
def screening_form(request: Request, patient_id: str,
                   actor: Actor = need("screening")) -> Response:
    return _screening_page(request, actor, patient_id, {"given_0": "on"}, {}, None)


@router.post("/patients/{patient_id}/screening")
async def screening(request: Request, patient_id: str,
                    actor: Actor = need("screening")) -> Response:
    """Record the trial; on any error the form comes back with every entry as typed and each
    error beside its field."""
    data = await form_of(request)
    doses, rows = _screening_doses(data)
    try:
        with uow(request, actor) as u:
            services.record_screening(u, patient_id, doses)
    except OpenITBError as exc:
        fields, error = _screening_errors(exc, rows)
        return _screening_page(request, actor, patient_id, data, fields, error, status=422)
    security.flash(request.state.session, "Screening recorded.")
    return redirect(f"/patients/{patient_id}")


@router.get("/patients/{patient_id}/implant")
def implant_form(request: Request, patient_id: str, actor: Actor = need("implant")) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "implant.html", {**record, "profiles": load_catalog().pumps,
                                            "concentrations": load_library().known_concentrations(),
                                            "values": {}, "error": None})


CONFIRM_MISSING = "Nothing was written: tick this box to confirm you have checked the review."


def confirm_missing(data: Mapping[str, Any], review: Any) -> str | None:
    """The word beside the confirmation tick when the write button was pressed without it."""
    if (review is not None and not review.refused and data.get("action") == "write"
            and data.get("confirmed") != "on"):
        return CONFIRM_MISSING
    return None


def _review_then_confirm(request: Request, actor: Actor, data: dict[str, Any],
                         review: Any, confirm: Any) -> tuple[Any, Any, str | None, int]:
    """One form, two steps. Without ``confirmed``: the review (nothing written). With it: the
    confirm, bound to the token of the review shown; if the form or the pump changed since,
    409 and the new review to check. Returns (review, written row, error, status)."""
    if data.get("action") == "write" and data.get("confirmed") != "on":
        try:  # the write button without the tick: nothing written, the review and a word
            with uow(request, actor) as u:
                return review(u), None, None, 422
        except OpenITBError as exc:
            return None, None, error_text(exc), 422
    if data.get("confirmed") == "on":
        try:
            with uow(request, actor) as u:
                return None, confirm(u), None, 200
        except OpenITBError as exc:
            error, status = error_text(exc), (409 if getattr(exc, "code", "") == "conflict"
                                              else 422)
        try:
            with uow(request, actor) as u:
                return review(u), None, error, status
        except OpenITBError:
            return None, None, error, status
    try:
        with uow(request, actor) as u:
            return review(u), None, None, 200
    except OpenITBError as exc:
        return None, None, error_text(exc), 422


@router.post("/patients/{patient_id}/implant")
async def implant(request: Request, patient_id: str, actor: Actor = need("implant")) -> Response:
    """Step 1: the review of what would be written; step 2 (``confirmed``): write it."""
    data = await form_of(request)
    return _pump_write(request, actor, patient_id, data, "implant.html",
                       lambda u: services.implant_review(u, patient_id, data),
                       lambda u: services.implant(u, patient_id, data))


def _pump_write(request: Request, actor: Actor, patient_id: str, data: dict[str, str],
                template: str, review_of: Any, write: Any) -> Response:
    """Implant and replacement alike: review, then (ticked and confirmed) write and go back to
    the patient; otherwise the form again with the review, the error and the values typed."""
    review, row, error, status = _review_then_confirm(request, actor, data, review_of, write)
    if row is not None:
        return redirect(f"/patients/{patient_id}")
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, template, {
        **record, "profiles": load_catalog().pumps,
        "concentrations": load_library().known_concentrations(), "values": data,
        "review": review, "error": error, "confirm_error": confirm_missing(data, review)},
        status=status)


# ---- programming -----------------------------------------------------------------------------
CONTEXT_MISSING = InvalidInput("context", "", "titration or maintenance, chosen for this "
                               "change: the step allowed per 24 h depends on it")


def _program_page(request: Request, actor: Actor, patient_id: str, values: Mapping[str, Any],
                  review: Any, error: str | None, field_errors: dict[str, str],
                  status: int = 200) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    steps: dict[str, Any] = {}
    if record["pump"] is not None and review is None:
        try:  # the kernel's step helper: one read of the pump, nothing written
            with uow(request, actor) as u:
                steps = {c.value: v for c, v in services.program_steps(u, patient_id).items()}
        except OpenITBError:
            steps = {}
    return render(request, "program.html", {
        **record, "values": values, "review": review, "error": error, "steps": steps,
        "field_errors": field_errors, "confirm_error": confirm_missing(values, review)},
        status=status)


@router.get("/patients/{patient_id}/program")
def program_form(request: Request, patient_id: str, actor: Actor = need("program")) -> Response:
    return _program_page(request, actor, patient_id, {}, None, None, {})


@router.post("/patients/{patient_id}/program")
async def program(request: Request, patient_id: str, actor: Actor = need("program")) -> Response:
    """Without ``confirmed``: the side-by-side review. With it: write what was reviewed. The
    context (titration or maintenance) is chosen on the page, never assumed. A step button of
    the helper without script (``pick`` = "context dose") reviews that dose."""
    data = await form_of(request)
    pick = data.pop("pick", "").split()
    if len(pick) == 2:
        data.update({"context": pick[0], "dose_per_day": pick[1], "mode": "continuous"})
    if not data.get("context"):
        return _program_page(request, actor, patient_id, data, None, None,
                             {"context": error_text(CONTEXT_MISSING)}, status=422)
    with uow(request, actor) as u:
        pump = queries.patient_record(u, patient_id)["pump"]
        old_refill_by = pump.refill_by if pump is not None else None
    review, row, error, status = _review_then_confirm(
        request, actor, data, lambda u: services.program_review(u, patient_id, data),
        lambda u: services.program(u, patient_id, data))
    if row is not None:
        with uow(request, actor) as u:
            pump = queries.patient_record(u, patient_id)["pump"]
        security.flash(request.state.session, program_written(
            row.dose_per_day, data["context"], old_refill_by,
            pump.refill_by if pump is not None else None))
        return redirect(f"/patients/{patient_id}")
    return _program_page(request, actor, patient_id, data, review, error, {}, status=status)


def program_written(dose: float, context: str, old: Any, new: Any) -> str:
    """The confirmation after a program is written, saying whether the refill date moved."""
    text = f"Program written: {dose:g} mcg/day ({context})."
    if new is not None and old is not None and new.date() != old.date():
        text += f" The next refill moved to {new:%Y-%m-%d} (was {old:%Y-%m-%d})."
    elif new is not None:
        text += f" Next refill by {new:%Y-%m-%d} (unchanged)."
    return text


# ---- refill ----------------------------------------------------------------------------------
@router.get("/patients/{patient_id}/refill")
def refill_form(request: Request, patient_id: str, actor: Actor = need("refill")) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    pump = record["pump"]
    values = {"concentration": f"{pump.concentration:g}" if pump else "",
              "volume_ml": f"{record['profile'].capacity.value:g}" if pump else ""}
    return render(request, "refill.html", {**record, "values": values, "review": None,
                                           "error": None,
                                           "concentrations": load_library().known_concentrations()})


@router.post("/patients/{patient_id}/refill")
async def refill(request: Request, patient_id: str, actor: Actor = need("refill")) -> Response:
    """Step 2 (no ``confirmed``): the discrepancy, the bridge bolus and the new dates.
    Step 3 (``confirmed``): write what was reviewed and book the next refill."""
    data = await form_of(request)
    review, row, error, status = _review_then_confirm(
        request, actor, data, lambda u: services.refill_review(u, patient_id, data),
        lambda u: services.refill(u, patient_id, data))
    if row is not None:
        return redirect(f"/patients/{patient_id}?refilled={row.id}")
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "refill.html", {**record, "values": data, "review": review,
                                           "error": error,
                                           "confirm_error": confirm_missing(data, review),
                                           "concentrations": load_library().known_concentrations()},
                  status=status)


# ---- MRI, replacement ------------------------------------------------------------------------
@router.post("/patients/{patient_id}/mri")
async def mri(request: Request, patient_id: str, actor: Actor = need("mri")) -> Response:
    data = await form_of(request)
    with uow(request, actor) as u:
        services.record_mri(u, patient_id, data)
    return redirect(f"/patients/{patient_id}")


@router.post("/mri/{mri_id}/check")
async def mri_check(request: Request, mri_id: str, actor: Actor = need("mri")) -> Response:
    await form_of(request)
    with uow(request, actor) as u:
        row = services.post_mri_check(u, mri_id)
    return redirect(f"/patients/{row.patient_id}")


@router.post("/patients/{patient_id}/replacement")
async def replacement(request: Request, patient_id: str,
                      actor: Actor = need("replacement")) -> Response:
    data = await form_of(request)
    with uow(request, actor) as u:
        services.plan_replacement(u, patient_id, data)
    return redirect(f"/patients/{patient_id}")


@router.get("/patients/{patient_id}/replace")
def replace_form(request: Request, patient_id: str,
                 actor: Actor = need("replacement")) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "replace.html", {
        **record, "profiles": load_catalog().pumps,
        "concentrations": load_library().known_concentrations(), "values": {},
        "review": None, "error": None})


@router.post("/patients/{patient_id}/replace")
async def replace(request: Request, patient_id: str,
                  actor: Actor = need("replacement")) -> Response:
    """Step 1: the review (old pump read, new pump planned); step 2 (``confirmed``): write."""
    data = await form_of(request)
    return _pump_write(request, actor, patient_id, data, "replace.html",
                       lambda u: services.replacement_review(u, patient_id, data),
                       lambda u: services.replace_pump(u, patient_id, data))


# ---- alarms, clock ---------------------------------------------------------------------------
@router.get("/alarms")
def alarms(request: Request, all: str = "", actor: Actor = need("view_clinic")) -> Response:
    with uow(request, actor) as u:
        rows = queries.alarm_inbox(u, include_acknowledged=bool(all))
        people = queries.people(u, {a.acknowledged_by for a, _ in rows})
    return render(request, "alarms.html", {"rows": rows, "meaning": queries.ALARM_MEANING,
                                           "show_all": bool(all), "people": people})


@router.post("/alarms/{alarm_id}/ack")
async def acknowledge(request: Request, alarm_id: str,
                      actor: Actor = need("acknowledge")) -> Response:
    data = await form_of(request)
    error = None
    try:
        with uow(request, actor) as u:
            services.acknowledge_alarm(u, alarm_id, data.get("note"))
    except OpenITBError as exc:
        if not request.headers.get("hx-request"):
            raise
        error = error_text(exc)
    if request.headers.get("hx-request"):  # htmx swaps the alarm's own item in place
        with uow(request, actor) as u:
            a, name = queries.alarm_item(u, alarm_id)
            people = queries.people(u, {a.acknowledged_by})
        return render(request, "_alarm.html", {"a": a, "name": name, "ack_error": error,
                                               "meaning": queries.ALARM_MEANING,
                                               "people": people})
    return redirect(safe_next(data.get("next") or "/alarms"))


@router.post("/clock")
async def clock(request: Request, actor: Actor = need("clock")) -> Response:
    data = await form_of(request)
    if not request.app.state.demo:
        raise RefusedOperation("the clinic clock is the wall clock outside demo mode",
                               code="forbidden")
    with uow(request, actor) as u:
        services.advance_clock(u, data)
    return redirect(safe_next(data.get("next") or "/"))


# ---- administration --------------------------------------------------------------------------
def _admin_page(request: Request, actor: Actor, link: dict[str, str] | None = None,
                error: str | None = None, status: int = 200) -> Response:
    from sqlalchemy import select

    from openitb.store.models import Patient, User

    q = request.query_params
    page = _int_param(q.get("page"), 1)
    patient = _int_param(q.get("patient"), 0) or None
    user, action = q.get("user", "")[:80], q.get("action", "")[:60]
    with uow(request, actor) as u:
        users = list(u.session.scalars(select(User).order_by(User.username)))
        linked = {p.id: p.name for p in u.session.scalars(select(Patient).where(
            Patient.id.in_([x.patient_id for x in users if x.patient_id])))}
        trail, total = queries.audit_page(u, page, user=user, action=action, patient=patient)
        who, actions = queries.audit_choices(u)
    pages = max(1, -(-total // queries.AUDIT_PAGE))
    filters = {"user": user, "action": action, "patient": str(patient or "")}
    return render(request, "admin.html", {
        "users": users, "linked": linked, "trail": [(e, audit_changes(e)) for e in trail],
        "total": total, "page": page, "pages": pages, "filters": filters,
        "who": who, "actions": actions, "error": error, "link": link}, status)


def _int_param(raw: str | None, default: int) -> int:
    """A whole number from 1 from the query string, else ``default``."""
    try:
        return max(1, min(int(raw), 10**9)) if raw else default
    except ValueError:
        return default


AUDIT_VALUE_CHARS = 120  # what the audit page shows of one value (the full row is in the API)


def audit_changes(entry: Any) -> list[tuple[str, str, str]]:
    """The fields an audit row changed, as (field, before, after), each readable: a created
    row lists its fields with an empty before, a removed one its fields with an empty after."""
    before, after = entry.before or {}, entry.after or {}
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return [("value", _shown(before), _shown(after))]
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return [(labels.field_label(k), _shown(before.get(k)), _shown(after.get(k))) for k in keys]


def _shown(value: Any) -> str:
    import json

    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                          ensure_ascii=False)
    return text if len(text) <= AUDIT_VALUE_CHARS else text[:AUDIT_VALUE_CHARS] + "..."


def password_url(request: Request, token: str) -> str:
    return f"{request.app.state.base_url}/password/{token}"


@router.get("/admin")
def admin(request: Request, actor: Actor = need("accounts")) -> Response:
    return _admin_page(request, actor)


@router.post("/admin/users")
async def create_user(request: Request, actor: Actor = need("accounts")) -> Response:
    """A new staff or administrator account, and its one-time setup link to hand over."""
    data = await form_of(request)
    try:
        with uow(request, actor) as u:
            user = accounts.create_user(u, data.get("username", ""),
                                        data.get("display_name", ""), data.get("role", ""),
                                        None, data.get("patient_id") or None)
            token = accounts.issue_link(u, user.id, "setup")
            name = user.username
    except OpenITBError as exc:
        return _admin_page(request, actor, error=error_text(exc),
                           status=403 if getattr(exc, "code", "") == "forbidden" else 422)
    return _admin_page(request, actor, link={"username": name, "purpose": "setup",
                                             "url": password_url(request, token)})


@router.post("/admin/users/{user_id}/reset")
async def reset_link(request: Request, user_id: str, actor: Actor = need("accounts")) -> Response:
    await form_of(request)
    with uow(request, actor) as u:
        token = accounts.issue_link(u, user_id, "reset")
        from openitb.store.models import User

        name = u.session.get(User, int(user_id)).username  # type: ignore[union-attr]
    return _admin_page(request, actor, link={"username": name, "purpose": "reset",
                                             "url": password_url(request, token)})


@router.get("/patients/{patient_id}/account")
def patient_account_form(request: Request, patient_id: str,
                         actor: Actor = need("link_patient")) -> Response:
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "patient_account.html", {**record, "link": None, "error": None})


@router.post("/patients/{patient_id}/account")
async def patient_account(request: Request, patient_id: str,
                          actor: Actor = need("link_patient")) -> Response:
    """The patient's clinician creates a patient or caregiver account linked to the patient,
    and hands over its one-time setup link."""
    data = await form_of(request)
    link, error = None, None
    try:
        with uow(request, actor) as u:
            user, token = accounts.create_patient_account(
                u, patient_id, data.get("username", ""), data.get("display_name", ""))
            link = {"username": user.username, "url": password_url(request, token)}
    except OpenITBError as exc:
        error = error_text(exc)
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
    return render(request, "patient_account.html", {**record, "link": link, "error": error},
                  422 if error else 201)


@router.get("/patients/{patient_id}/wallet-card.pdf")
def wallet_card(request: Request, patient_id: str) -> Response:
    from openitb.reports.pdf import wallet_card_pdf

    actor = signed_in(request)
    with uow(request, actor) as u:
        body = wallet_card_pdf(queries.patient_record(u, patient_id))
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="itb-wallet-card.pdf"'})


@router.get("/patients/{patient_id}/summary.pdf")
def therapy_summary(request: Request, patient_id: str) -> Response:
    from openitb.reports.pdf import therapy_summary_pdf

    actor = signed_in(request)
    with uow(request, actor) as u:
        body = therapy_summary_pdf(queries.patient_record(u, patient_id), now=u.now)
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="itb-therapy-summary.pdf"'})


@router.get("/patients/{patient_id}/refill.ics")
def own_refill_event(request: Request, patient_id: str) -> Response:
    """The next refill of one patient as an iCalendar file (for the patient's own calendar)."""
    from openitb.interop.ical import feed

    actor = signed_in(request)
    with uow(request, actor) as u:
        record = queries.patient_record(u, patient_id)
        pump = record["pump"]
        rows = ([(pump.id, record["patient"].name, pump.serial, pump.refill_by,
                  pump.low_alarm_at)] if pump is not None and pump.refill_by else [])
        body = feed(u.session, rows, now=u.now)
    return Response(body, media_type="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="itb-refill.ics"'})
