"""The FastAPI application: sessions, CSRF, error pages, static files, pages and the API."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from openitb.clinic.accounts import load_actor
from openitb.clinic.facade import Clinic
from openitb.errors import InvalidInput, RefusedOperation
from openitb.web import security
from openitb.web.deps import NotSignedIn

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
log = logging.getLogger("openitb.web")

STATUS = {"forbidden": 403, "not_found": 404, "conflict": 409, "unauthenticated": 401,
          "csrf": 403}


def create_app(clinic: Clinic, *, demo: bool = False, secure_cookies: bool | None = None) -> FastAPI:
    app = FastAPI(
        title="OpenITB clinic",
        version="0.1.0",
        description="Intrathecal baclofen clinic: patients, screening, implant, programming, "
        "refills, alarms. Simulation, training and research only; not a medical device.",
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.clinic = clinic
    app.state.demo = demo
    with clinic.factory() as s:
        codec = security.SessionCodec(security.secret_key(s))
    secure = (os.environ.get("OPENITB_SECURE_COOKIES") == "1") if secure_cookies is None \
        else secure_cookies

    @app.middleware("http")
    async def session_middleware(request: Request, call_next: Any) -> Response:
        data = codec.load(request.cookies.get(security.COOKIE))
        fresh = data is None
        session = data or security.new_session()
        request.state.session = session
        request.state.actor = None
        if session.get("uid") is not None:
            with clinic.factory() as s:
                request.state.actor = load_actor(s, int(session["uid"]))
        before = dict(session)
        response: Response = await call_next(request)
        if fresh or request.state.session != before:
            response.set_cookie(security.COOKIE, codec.dump(request.state.session),
                                max_age=security.MAX_AGE_S, httponly=True, samesite="lax",
                                secure=secure, path="/")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'")
        return response

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
        if wants_json(request):
            return JSONResponse({"error": "unauthenticated", "reason": "sign in first"}, 401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> Response:
        return page_error(request, 422, "Please correct the input",
                          f"{exc.field}: got {exc.given!r}; {exc.allowed}",
                          {"error": "invalid", "field": exc.field, "given": str(exc.given),
                           "allowed": exc.allowed})

    @app.exception_handler(RefusedOperation)
    async def _refused(request: Request, exc: RefusedOperation) -> Response:
        status = STATUS.get(exc.code, 422)
        titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 401: "Sign in"}
        return page_error(request, status, titles.get(status, "Refused"), exc.reason,
                          {"error": exc.code, "reason": exc.reason})

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from openitb.web import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory openitb.web.app:app_from_env`` (several workers):
    OPENITB_DATABASE_URL names the database, OPENITB_DEMO=1 runs the demo clock."""
    from openitb.store.db import make_engine

    return create_app(Clinic(make_engine()), demo=os.environ.get("OPENITB_DEMO") == "1")
