"""Request plumbing shared by the pages and the API: the clinic, the actor, permission gates."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from openitb.clinic.accounts import PERMISSIONS, require
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor, UnitOfWork
from openitb.errors import RefusedOperation


class NotSignedIn(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class CsrfFailed(RefusedOperation):
    def __init__(self) -> None:
        super().__init__("missing or wrong CSRF token: reload the page and try again",
                         code="csrf")


def clinic(request: Request) -> Clinic:
    c: Clinic = request.app.state.clinic
    return c


def uow(request: Request, actor: Actor) -> UnitOfWork:
    u = clinic(request).uow(actor)
    request.state.clinic_now = u.now
    return u


def signed_in(request: Request) -> Actor:
    actor: Actor | None = request.state.actor
    if actor is None:
        raise NotSignedIn()
    return actor


def need(permission: str) -> Any:
    """A dependency: the signed-in actor if their role has ``permission`` (refusals logged).

    It runs before the request body is read, so a role that may not act is told so (403) even
    when its request would also be malformed."""

    def gate(request: Request) -> Actor:
        actor = signed_in(request)
        if actor.role not in PERMISSIONS[permission]:
            with uow(request, actor) as u:  # the refusal is logged by the unit of work
                u.action = f"{request.method} {request.url.path}"
                require(actor, permission, u)
        return actor

    return Depends(gate)


def check_csrf(request: Request, form_token: str | None = None) -> None:
    session: dict[str, Any] = request.state.session
    given = request.headers.get("x-csrf-token") or form_token
    from openitb.web.security import csrf_ok

    if not csrf_ok(session, given):
        actor = request.state.actor or Actor("anonymous", "anonymous")
        with uow(request, actor) as u:
            u.action = f"{request.method} {request.url.path}"
            raise CsrfFailed()



def sign_in(request: Request, username: str, password: str) -> Actor:
    """Authenticate through the throttle: too many recent failures for the username are
    refused (429, logged) without checking the password."""
    from openitb.clinic.accounts import authenticate

    throttle = request.app.state.login_throttle
    anonymous = Actor("".join(ch for ch in username if ch >= " ")[:80] or "-", "anonymous")
    wait = throttle.wait_seconds(username)
    if wait > 0:
        with uow(request, anonymous) as u:
            u.action = "login"
            raise RefusedOperation(
                f"too many failed sign-ins for this username: try again in {wait / 60:.0f} "
                "minutes", code="throttled")
    try:
        with uow(request, anonymous) as u:
            actor = authenticate(u, username, password)
    except RefusedOperation:
        throttle.failed(username)
        raise
    throttle.succeeded(username)
    return actor
