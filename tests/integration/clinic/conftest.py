"""Fixtures: a migrated SQLite clinic (or PostgreSQL when asked), the demo seed, web clients."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openitb.clinic.demo import DEMO_PASSWORD, seed_demo
from openitb.clinic.facade import Clinic
from openitb.store.db import make_engine
from openitb.web.app import create_app


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed the demo once per session; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    clinic = Clinic(make_engine(f"sqlite:///{path}"))
    seed_demo(clinic)
    clinic.engine.dispose()
    return path


@pytest.fixture
def demo_clinic(demo_template: Path, tmp_path: Path) -> Iterator[Clinic]:
    import shutil

    path = tmp_path / "clinic.db"
    shutil.copy(demo_template, path)
    clinic = Clinic(make_engine(f"sqlite:///{path}"))
    yield clinic
    clinic.engine.dispose()


@pytest.fixture
def empty_clinic(tmp_path: Path) -> Iterator[Clinic]:
    clinic = Clinic(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    yield clinic
    clinic.engine.dispose()


@pytest.fixture
def app_client(demo_clinic: Clinic) -> TestClient:
    return TestClient(create_app(demo_clinic, demo=True))


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient) -> str:
    return str(client.get("/api/v1/auth/csrf").json()["csrf_token"])


def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> str:
    token = csrf_of(client)
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def page_csrf(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def postgres_url() -> str | None:
    return os.environ.get("OPENITB_TEST_POSTGRES") or (
        os.environ.get("OPENITB_DATABASE_URL")
        if str(os.environ.get("OPENITB_DATABASE_URL", "")).startswith("postgres") else None)
