"""Fixtures of the browser tests (see browserkit.py): one served demo clinic and one chromium per
test module."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from browserkit import ARGS, ARTIFACTS, CHROMIUM, need_chromium

from openitb.clinic.demo import patient_ids, seed_demo
from openitb.clinic.facade import Clinic
from openitb.store.db import make_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    need_chromium()
    import uvicorn

    from openitb.web.app import create_app

    db = tmp_path_factory.mktemp("e2e") / "clinic.db"
    clinic = Clinic(make_engine(f"sqlite:///{db}"))
    seed_demo(clinic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(clinic, demo=True), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", patient_ids(clinic)
    srv.should_exit = True
    thread.join(timeout=10)
    clinic.engine.dispose()


@pytest.fixture(scope="module")
def browser(server: tuple[str, dict[str, int]]) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


