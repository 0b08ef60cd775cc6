"""schemathesis against the OpenAPI document: generated requests to every operation, signed in
as a physician with a valid CSRF token, must never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from openitb.clinic.facade import Clinic
from openitb.store.db import make_engine
from openitb.web.app import create_app
from openitb.web.security import COOKIE

from .conftest import login


@pytest.fixture(scope="module")
def api_app(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    import shutil

    path = tmp_path_factory.mktemp("schemathesis") / "clinic.db"
    shutil.copy(demo_template, path)
    clinic = Clinic(make_engine(f"sqlite:///{path}"))
    app = create_app(clinic, demo=True)
    client = TestClient(app)
    token = login(client, "dr.rivera")
    app.state.test_auth = ({"X-CSRF-Token": token}, {COOKIE: client.cookies[COOKIE]})
    yield app
    clinic.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(api_app: object) -> object:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case, api_app: object) -> None:
    headers, cookies = api_app.state.test_auth  # type: ignore[attr-defined]
    response = case.call(headers=dict(headers), cookies=dict(cookies))
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
