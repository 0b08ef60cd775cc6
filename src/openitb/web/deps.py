"""Request plumbing shared by the pages and the API: the clinic, the actor, permission gates."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Depends, Request

from openitb.clinic.accounts import PERMISSIONS, normalise_username, require
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor, UnitOfWork
from openitb.errors import InvalidInput, RefusedOperation

ANONYMOUS = Actor("anonymous", "anonymous")


class NotSignedIn(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class CsrfFailed(RefusedOperation):
    def __init__(self) -> None:
        super().__init__("missing or wrong CSRF token: reload the page and try again",
                         code="csrf")


def clinic(request: Request) -> Clinic:
    c: Clinic = request.app.state.clinic
    return c


def client_address(request: Request) -> str:
    """The socket peer's address (no forwarded header is trusted; see docs/clinic.md)."""
    return (request.client.host if request.client else "-")[:64]


def uow(request: Request, actor: Actor) -> UnitOfWork:
    u = clinic(request).uow(actor)
    u.address = client_address(request)
    request.state.clinic_now = u.now
    return u


def log_refusal(request: Request, actor: Actor | None, exc: RefusedOperation) -> None:
    """Log a refusal made outside a use case (signed in: an audit row; anonymous: counted)."""
    try:
        with uow(request, actor or ANONYMOUS) as u:
            u.action = f"{request.method} {request.url.path}"[:60]
            raise exc
    except RefusedOperation:
        pass  # the unit of work has logged it


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


# ---- personal access tokens (clinic/api_tokens.py) ---------------------------------------------
BEARER_PATHS = ("/api/", "/fhir/")  # the JSON API and the FHIR face; never the pages


def bearer_token(path: str, authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header on an API path, else None (the
    session cookie decides)."""
    if authorization is None or not path.startswith(BEARER_PATHS):
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def bearer_actor(c: Clinic, token: str) -> Actor | None:
    """The owner of a valid token (None: unknown, revoked, expired, or the account is off)."""
    from openitb.clinic.api_tokens import actor_for_token

    with c.factory() as s:
        return actor_for_token(s, token)


def by_bearer(request: Request) -> bool:
    """This request was authenticated by a bearer token (not by the session cookie)."""
    return bool(getattr(request.state, "bearer", False))


def check_csrf(request: Request, form_token: str | None = None) -> None:
    if by_bearer(request):  # no cookie was used: there is nothing to forge
        return
    session: dict[str, Any] = request.state.session
    given = request.headers.get("x-csrf-token") or form_token
    from openitb.web.security import csrf_ok

    if not csrf_ok(session, given):
        log_refusal(request, request.state.actor, CsrfFailed())
        raise CsrfFailed()


def sign_in(request: Request, username: object, password: object) -> Actor:
    """Authenticate through the throttle (web/throttle.py): an address or account that failed
    too often must wait, and is refused (429, counted) without the password being checked."""
    from openitb.clinic.accounts import authenticate

    throttle = request.app.state.login_throttle
    address = client_address(request)
    try:
        name: str | None = normalise_username(username)
    except InvalidInput:
        name = None
    anonymous = Actor(name or "-", "anonymous")
    wait = throttle.wait_seconds(name, address)
    if wait > 0:
        with uow(request, anonymous) as u:
            u.action = "login"
            raise RefusedOperation(
                f"too many failed sign-ins from here or for this account: try again in "
                f"{math.ceil(wait)} seconds", code="throttled")
    try:
        with uow(request, anonymous) as u:
            actor = authenticate(u, username, password)
    except RefusedOperation:
        throttle.failed(name, address)
        raise
    throttle.succeeded(actor.username)
    return actor
