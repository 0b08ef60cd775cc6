"""The API documentation page: Swagger UI (vendored under static/vendor/swagger-ui/, no CDN)
on the served OpenAPI document /api/v1/openapi.json. Open to anyone, like the document."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)


@router.get("/api/v1/docs")
def api_docs(request: Request) -> Response:
    from openitb.web.app import templates

    return templates.TemplateResponse(request, "api_docs.html", {})
