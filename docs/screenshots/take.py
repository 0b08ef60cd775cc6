"""Before/after screenshots of issue 16's layout items (8: responsive layout; 10: chart labels,
API docs), taken in headless chromium against a freshly seeded demo clinic:

    .venv/bin/python docs/screenshots/take.py before   # or: after

Writes docs/screenshots/issue16/<before|after>/<item>-<name>.png (viewport shots, not full page)
and prints each page's document width against the window width."""

from __future__ import annotations

import sys
from pathlib import Path

from demo_server import CHROMIUM, serve, sign_in
from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
PHONE, DESK = (390, 844), (1366, 900)
# item-name, user (None: signed out), path (with {MRN} placeholders), viewport, element to show
SHOTS = [
    ("8-patient-list", "nurse.kim", "/patients", PHONE, None),
    ("8-patient-page", "nurse.kim", "/patients/{ITB-1004}", PHONE, None),
    ("8-patient-page-chart", "nurse.kim", "/patients/{ITB-1004}", PHONE, "figure"),
    ("8-admin", "admin", "/admin", PHONE, None),
    ("8-dashboard", "nurse.kim", "/", PHONE, None),
    ("10-chart-labels", "dr.rivera", "/patients/{ITB-1004}", DESK, "figure"),
    ("10-api-docs", "dr.rivera", "/api/v1/docs", DESK, None),
]


def main(which: str) -> None:
    out = HERE / "issue16" / which
    out.mkdir(parents=True, exist_ok=True)
    base, ids, _ = serve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name, user, path, (w, h), element in SHOTS:
            ctx = browser.new_context(viewport={"width": w, "height": h})
            page = ctx.new_page()
            if user:
                sign_in(page, base, user)
            url = path
            for mrn, pid in ids.items():
                url = url.replace("{" + mrn + "}", str(pid))
            resp = page.goto(base + url)
            page.wait_for_load_state("networkidle")
            if element:
                page.locator(element).first.scroll_into_view_if_needed()
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"{name}: HTTP {resp.status if resp else '?'}, document {width} px wide "
                  f"in a {w} px window")
            ctx.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "after")
