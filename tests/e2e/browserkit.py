"""Shared pieces of the browser tests: Debian's chromium driven by Playwright against the clinic
served by uvicorn on loopback, seeded with the demo clinic. Each test module gets its own server
and database (module-scoped fixtures in conftest.py), so modules never see each other's writes.

Skips when chromium is absent, except under OPENITB_REQUIRE_ALL=1 (CI), where it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openitb.clinic.demo import DEMO_PASSWORD

CHROMIUM = os.environ.get("OPENITB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def need_chromium() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = "" if Path(CHROMIUM).exists() else CHROMIUM
    if missing:
        if os.environ.get("OPENITB_REQUIRE_ALL") == "1":
            pytest.fail(f"OPENITB_REQUIRE_ALL=1 but {missing} is missing")
        pytest.skip(f"{missing} is missing (apt-get install chromium)")


def sign_in(browser: object, base: str, username: str,
            viewport: tuple[int, int] = (1024, 1366)) -> object:
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})  # type: ignore[attr-defined]
    page = ctx.new_page()
    sign_in_page(page, base, username)
    return page


def sign_in_page(page: object, base: str, username: str) -> None:
    """Sign ``page`` in as ``username`` (its context keeps the session cookie)."""
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_label("Username").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(DEMO_PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


