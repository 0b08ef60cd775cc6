"""The FastAPI application: sessions, CSRF, error pages, static files, pages and the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openitb.clinic import labels
from openitb.clinic.accounts import load_actor
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor, brief
from openitb.errors import InvalidInput, RefusedOperation
from openitb.web import security
from openitb.web.deps import CsrfFailed, NotSignedIn, bearer_actor, bearer_token, log_refusal

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
# Templates are read once: checking every template file's mtime on each render cost 14 % of a
# page under load. OPENITB_TEMPLATES_RELOAD=1 (development) checks again.
templates.env.auto_reload = os.environ.get("OPENITB_TEMPLATES_RELOAD") == "1"
# Pages show codes through the one label table: {{ code | human }} or {{ code | human("stage") }}.
templates.env.filters["human"] = labels.human
log = logging.getLogger("openitb.web")

STATUS = {"forbidden": 403, "not_found": 404, "conflict": 409, "unauthenticated": 401,
          "csrf": 403, "throttled": 429, "too_large": 413}
# The largest request body read (OPENITB_MAX_BODY_BYTES): checked before anything parses it.
MAX_BODY_BYTES = 1 << 20
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Paths answered without a session: the liveness check reads no cookie and loads no actor.
SESSIONLESS = frozenset({"/healthz"})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     b"script-src 'self'; frame-ancestors 'none'"),
]


async def _sync_loop(clinic: Clinic, every_s: float) -> None:
    from openitb.clinic.services import active_pump_ids, sync_all_pumps
    from openitb.clinic.uow import SYSTEM

    def once() -> None:
        with clinic.uow(SYSTEM) as u:
            ids = active_pump_ids(u)
        for i in range(0, len(ids), 20):  # one short transaction per 20 pumps
            with clinic.uow(SYSTEM) as u:
                sync_all_pumps(u, ids[i:i + 20])

    while True:
        try:
            await anyio.to_thread.run_sync(once)
        except Exception:  # keep syncing; the failure is in the server log
            log.exception("pump sync failed")
        await asyncio.sleep(every_s)


class BodyLimitMiddleware:
    """Pure ASGI, outermost: a body over the limit (declared or streamed) is answered 413 and
    counted, before the application or a parser sees any of it; a body within it is passed on
    whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        reason = f"the request body is larger than {self.limit} bytes"
        await anyio.to_thread.run_sync(
            log_refusal, request, None, RefusedOperation(reason, code="too_large"))
        await JSONResponse({"error": "too_large", "reason": reason}, 413,
                           headers={"connection": "close"})(scope, receive, send)


class SessionMiddleware:
    """Pure ASGI: read the signed session cookie, load the actor (in a worker thread, so the
    event loop never waits on the database), and write the cookie back when it changed."""

    def __init__(self, app: ASGIApp, clinic: Clinic, codec: security.SessionCodec,
                 secure: bool) -> None:
        self.app, self.clinic, self.codec, self.secure = app, clinic, codec, secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in SESSIONLESS:  # no cookie read, no actor loaded, none written
            await self.app(scope, receive, self._with_security_headers(send))
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        token = bearer_token(scope["path"], request.headers.get("authorization"))
        if token is not None:  # an API client's personal access token: no cookie, no CSRF
            await self._bearer(scope, receive, send, request, state, token)
            return
        cookie = request.cookies.get(security.COOKIE)
        data = self.codec.load(cookie)
        fresh = data is None
        session = data or security.new_session()
        state["session"] = session
        state["actor"] = None
        if session.get("uid") is not None:
            state["actor"] = await anyio.to_thread.run_sync(
                self._actor, int(session["uid"]), int(session.get("epoch") or 0))
            if state["actor"] is None:  # signed out elsewhere, or the account is gone
                session = state["session"] = security.new_session()
                fresh = True
        before = dict(session)
        api_csrf_failed = (scope["path"].startswith("/api/") and scope["method"] not in SAFE_METHODS
                           and not security.csrf_ok(session, request.headers.get("x-csrf-token")))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                current = state.get("session", session)
                if fresh or current != before:
                    value = self.codec.dump(current)
                    flags = f"Max-Age={security.MAX_AGE_S}; Path=/; HttpOnly; SameSite=lax"
                    if self.secure:
                        flags += "; Secure"
                    headers.append("set-cookie", f"{security.COOKIE}={value}; {flags}")
                for key, val in SECURITY_HEADERS:
                    if key.decode() not in headers:
                        headers.append(key.decode(), val.decode())
            await send(message)

        if api_csrf_failed:  # before the body is parsed: a bad token is 403, never 422
            exc = CsrfFailed()
            await anyio.to_thread.run_sync(log_refusal, request, state["actor"], exc)
            await JSONResponse({"error": exc.code, "reason": exc.reason}, 403)(
                scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send_with_cookie)

    async def _bearer(self, scope: Scope, receive: Receive, send: Send, request: Request,
                      state: dict[str, Any], token: str) -> None:
        """A bearer request: its token's owner acts (401 if the token is not valid now); the
        session is a throwaway, never written to a cookie."""
        actor = await anyio.to_thread.run_sync(bearer_actor, self.clinic, token)
        send_headers = self._with_security_headers(send)

        if actor is None:
            exc = RefusedOperation("the bearer token is unknown, revoked or expired",
                                   code="unauthenticated")
            await anyio.to_thread.run_sync(log_refusal, request, None, exc)
            await JSONResponse({"error": exc.code, "reason": exc.reason}, 401,
                               headers={"www-authenticate": "Bearer"})(
                scope, receive, send_headers)
            return
        state.update(session=security.new_session(actor.user_id, actor.epoch), actor=actor,
                     bearer=True)
        await self.app(scope, receive, send_headers)

    @staticmethod
    def _with_security_headers(send: Send) -> Send:
        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, val in SECURITY_HEADERS:
                    if key.decode() not in headers:
                        headers.append(key.decode(), val.decode())
            await send(message)

        return send_headers

    def _actor(self, uid: int, epoch: int) -> Actor | None:
        with self.clinic.factory() as s:
            return load_actor(s, uid, epoch)


def create_app(clinic: Clinic, *, demo: bool = False, secure_cookies: bool | None = None,
               sync_every_s: float | None = None, base_url: str | None = None,
               max_body_bytes: int | None = None) -> FastAPI:
    """The application. ``sync_every_s``: outside demo mode, run every pump to the wall clock
    that often, so that their alarms reach the inbox without anyone opening the patient.
    ``base_url`` (else OPENITB_BASE_URL): where links that leave the browser point.
    ``max_body_bytes`` (else OPENITB_MAX_BODY_BYTES, else 1 MiB): the largest request body."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if sync_every_s and not demo:
            task = asyncio.create_task(_sync_loop(clinic, sync_every_s))
        # What exists at start-up (modules, templates, mappers) lives as long as the process:
        # moved out of the collector's reach, a full collection no longer walks it in the middle
        # of a request (it cost ~100 ms of one dashboard request in a hundred, bench_clinic).
        gc.collect()
        gc.freeze()
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="OpenITB clinic",
        version="0.1.0",
        description="Intrathecal baclofen clinic: patients, screening, implant, programming, "
        "refills, alarms. Simulation, training and research only; not a medical device.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN: web/api_docs.py serves a vendored one
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.clinic = clinic
    app.state.demo = demo
    from openitb.web.throttle import LoginThrottle

    app.state.login_throttle = LoginThrottle()
    app.state.base_url = security.base_url(base_url)
    limit = max_body_bytes or int(os.environ.get("OPENITB_MAX_BODY_BYTES") or MAX_BODY_BYTES)
    with clinic.factory() as s:
        codec = security.SessionCodec(security.secret_key(s))
    secure = (os.environ.get("OPENITB_SECURE_COOKIES") == "1") if secure_cookies is None \
        else secure_cookies

    app.add_middleware(SessionMiddleware, clinic=clinic, codec=codec, secure=secure)
    app.add_middleware(BodyLimitMiddleware, limit=limit)  # added last: runs first

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def page_error(request: Request, status: int, title: str, message: str,
                   detail: dict[str, Any]) -> Response:
        if wants_json(request):
            return JSONResponse(detail, status_code=status)
        from openitb.web.pages import render

        return render(request, "error.html", {"title": title, "message": message}, status)

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.url.path != "/":  # the front door is not a refusal (counted, not a row)
            await anyio.to_thread.run_sync(
                log_refusal, request, None,
                RefusedOperation("not signed in", code="unauthenticated"))
        if wants_json(request):
            return JSONResponse({"error": "unauthenticated", "reason": "sign in first"}, 401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = ".".join(loc) or "request"
        given = first.get("input", None)
        allowed = str(first.get("msg", "a valid value"))
        detail = {"error": "invalid", "field": field, "given": str(given)[:200],
                  "allowed": allowed, "errors": len(errors)}
        from openitb.web.pages import error_text

        return page_error(request, 422, "Please correct the input",
                          error_text(InvalidInput(field, given, allowed))[:500], detail)

    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> Response:
        from openitb.web.pages import error_text

        given = brief(exc.given)
        return page_error(request, 422, "Please correct the input", error_text(exc),
                          {"error": "invalid", "field": exc.field, "given": str(given),
                           "allowed": exc.allowed})

    @app.exception_handler(RefusedOperation)
    async def _refused(request: Request, exc: RefusedOperation) -> Response:
        status = STATUS.get(exc.code, 422)
        titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 401: "Sign in",
                  429: "Please wait", 413: "Too large"}
        return page_error(request, status, titles.get(status, "Refused"), exc.reason,
                          {"error": exc.code, "reason": exc.reason})

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from openitb.web import api, api_docs, fhir_api, pages, token_pages

    app.include_router(api_docs.router)
    app.include_router(api.router)
    app.openapi = lambda: api.openapi_document(app)  # type: ignore[method-assign]
    app.include_router(fhir_api.router)
    app.include_router(token_pages.router)
    app.include_router(pages.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:  # no I/O: answered on the event loop, no thread
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory openitb.web.app:app_from_env`` (several workers):
    OPENITB_DATABASE_URL names the database, OPENITB_DEMO=1 runs the demo clock."""
    from openitb.store.db import make_engine

    demo = os.environ.get("OPENITB_DEMO") == "1"
    return create_app(Clinic(make_engine()), demo=demo, sync_every_s=None if demo else 300.0)
