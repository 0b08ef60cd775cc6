"""The account page's personal access tokens (clinic/api_tokens.py): list, make, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from openitb.clinic import api_tokens
from openitb.clinic.clock import wall_now
from openitb.clinic.uow import Actor
from openitb.errors import OpenITBError
from openitb.web import security
from openitb.web.deps import signed_in, uow
from openitb.web.pages import error_text, form_of, redirect, render

router = APIRouter(include_in_schema=False)


def _page(request: Request, actor: Actor, status: int = 200, **context: Any) -> Response:
    with uow(request, actor) as u:
        tokens = api_tokens.listed(u)
        u.session.expunge_all()
    return render(request, "tokens.html",
                  {"tokens": tokens, "now": wall_now(), "created": None,
                   "created_token": None, "error": None, "values": None,
                   "max_days": api_tokens.MAX_DAYS, "default_days": api_tokens.DEFAULT_DAYS,
                   **context}, status)


@router.get("/account/tokens")
def tokens_page(request: Request) -> Response:
    return _page(request, signed_in(request))


@router.post("/account/tokens")
async def make_token(request: Request) -> Response:
    """Make a token; it is shown on this answer only."""
    actor = signed_in(request)
    data = await form_of(request)
    raw_days = data.get("expires_in_days", "").strip()
    try:
        days: object = int(raw_days) if raw_days.isdigit() and len(raw_days) < 6 else (
            raw_days or None)
        with uow(request, actor) as u:
            row, token = api_tokens.create(u, data.get("name", ""), days, by_session=True)
            u.session.expunge(row)
    except OpenITBError as exc:
        return _page(request, actor, 422, error=error_text(exc), values=data)
    return _page(request, actor, 201, created=row, created_token=token)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int) -> Response:
    actor = signed_in(request)
    await form_of(request)
    with uow(request, actor) as u:
        row = api_tokens.revoke(u, token_id)
        name = row.name
    security.flash(request.state.session, f"Token \u201c{name}\u201d revoked: it no longer works.")
    return redirect("/account/tokens")
