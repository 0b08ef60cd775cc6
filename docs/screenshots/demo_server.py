"""What the screenshot scripts share: a freshly seeded demo clinic served on loopback, and a
signed-in chromium page. The scripts run as files (``.venv/bin/python docs/screenshots/X.py``),
so this directory is on sys.path and they import it by name."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from openitb.clinic.demo import DEMO_PASSWORD, patient_ids, seed_demo
from openitb.clinic.facade import Clinic
from openitb.store.db import make_engine
from openitb.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def serve(db: Path | None = None) -> tuple[str, dict[str, int], uvicorn.Server]:
    """The demo clinic on a free loopback port: (base URL, patient ids by MRN, server)."""
    db = db or Path(tempfile.mkdtemp()) / "clinic.db"
    clinic = Clinic(make_engine(f"sqlite:///{db}"))
    seed_demo(clinic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(clinic, demo=True), host="127.0.0.1",
                                        port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", patient_ids(clinic), srv


def sign_in(page: Any, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
