"""Before/after screenshots of issue 16 items 1, 2, 3 and 10 (s19-state): a demo clinic served on
loopback, driven by chromium. Usage: .venv/bin/python docs/screenshots/take_s19-state.py before|after
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from demo_server import ARGS, CHROMIUM, serve, sign_in
from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "issue16"


def main(which: str) -> None:
    out = OUT / which
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base, ids, srv = serve(Path(tmp) / "clinic.db")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_context(viewport={"width": 1366, "height": 900}).new_page()
            sign_in(page, base, "dr.rivera")
            # 1: Lucia Garcia's pump, motor stopped by an MRI two hours ago.
            page.goto(f"{base}/patients/{ids['ITB-1005']}")
            page.screenshot(path=str(out / "1-pump-state.png"))
            # 10: the patient list (sorting, overdue refills).
            page.goto(f"{base}/patients")
            page.screenshot(path=str(out / "10-patient-list.png"))
            # 2: acknowledge the critical motor-stall alarm; its cause persists.
            page.goto(f"{base}/alarms")
            item = page.locator("li.critical").first
            item.get_by_label("What was done").fill("called the patient; MRI unit informed")
            item.get_by_role("button", name="Acknowledge").click()
            page.wait_for_timeout(500)
            page.goto(f"{base}/")
            page.screenshot(path=str(out / "2-acknowledged-alarm.png"))
            # 3: "To next alarm" three times.
            for _ in range(3):
                page.get_by_role("button", name="To next alarm").click()
                page.wait_for_load_state()
            page.screenshot(path=str(out / "3-next-alarm.png"))
            b.close()
        srv.should_exit = True


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "after")
