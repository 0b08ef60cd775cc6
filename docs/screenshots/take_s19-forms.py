"""Viewport screenshots of the forms of issue 16 (items 4, 5, 6, 7, 9) on a served demo clinic.

    .venv/bin/python docs/screenshots/take_s19-forms.py before|after

Serves a fresh demo clinic (a temporary SQLite file) on loopback and drives Debian's chromium,
saving docs/screenshots/issue16/<before|after>/<item>-<name>.png (1366x900 viewport)."""

from __future__ import annotations

import sys
from pathlib import Path

from demo_server import ARGS, CHROMIUM, serve, sign_in
from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "issue16"


def main(which: str) -> None:
    out = OUT / which
    out.mkdir(parents=True, exist_ok=True)
    base, ids, srv = serve()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)

        def page_as(user: str, w: int = 1366, h: int = 900):  # type: ignore[no-untyped-def]
            pg = b.new_context(viewport={"width": w, "height": h}).new_page()
            sign_in(pg, base, user)
            return pg

        def snap(pg, name: str) -> None:  # type: ignore[no-untyped-def]
            pg.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")

        dr = page_as("dr.rivera")
        # 4: screening with a typo and a "1+": what is left of the form after the error
        dr.goto(f"{base}/patients/{ids['ITB-1010']}/screening")
        dr.fill("[name=effect_0]", "5")
        dr.fill("[name=before_0_hip_adductors]", "3")
        dr.fill("[name=after_0_hip_adductors]", "1+")
        dr.fill("[name=before_0_knee_extensors]", "2")
        dr.fill("[name=after_0_knee_extensors]", "x")
        dr.get_by_role("button", name="Record and evaluate").click()
        dr.wait_for_load_state()
        snap(dr, "4-screening-error")
        # 5: refill review, "Perform refill" without the tick
        nurse = page_as("nurse.kim")
        nurse.goto(f"{base}/patients/{ids['ITB-1008']}/refill")
        expected = float(nurse.locator("#expected").inner_text().split()[0])
        nurse.get_by_label("Volume withdrawn (mL)").fill(f"{expected - 0.2:.1f}")
        nurse.get_by_label("New volume filled (mL)").fill("20")
        nurse.get_by_role("button", name="Review").first.click()
        nurse.wait_for_load_state()
        nurse.get_by_role("button", name="Perform refill").click()
        nurse.wait_for_load_state()
        nurse.locator("#write").scroll_into_view_if_needed()
        snap(nurse, "5-refill-no-tick")
        # 6: titration form and its review
        dr.goto(f"{base}/patients/{ids['ITB-1006']}/program")
        snap(dr, "6-titration-form")
        dr.get_by_label("Daily dose (mcg/day), continuous").fill("110")
        if dr.locator("select#context").count():
            dr.get_by_label("Context", exact=True).select_option("titration")
        else:
            dr.locator("#context-titration").check()
        dr.locator("#review-button, button[value=review]").first.click()
        dr.wait_for_load_state()
        dr.locator("#review").scroll_into_view_if_needed()
        snap(dr, "6-titration-review")
        # 7: implant and replacement forms
        dr.goto(f"{base}/patients/{ids['ITB-1011']}/implant")
        snap(dr, "7-implant-form")
        dr.goto(f"{base}/patients/{ids['ITB-1001']}/replace")
        snap(dr, "7-replace-form")
        # 9: audit page, account linking, error wording
        admin = page_as("admin")
        admin.goto(f"{base}/admin")
        admin.locator("#audit-h").scroll_into_view_if_needed()
        snap(admin, "9-audit")
        dr.goto(f"{base}/patients/{ids['ITB-1006']}/account")
        snap(dr, "9-link-account")
        nurse.goto(f"{base}/alarms")
        nurse.locator("form[hx-post]").first.evaluate("f => f.noValidate = true")
        nurse.locator("form[hx-post] input[name=note]").first.fill("  ")
        nurse.locator("form[hx-post] button").first.click()
        nurse.wait_for_timeout(800)
        snap(nurse, "9-error-wording")
        b.close()
    srv.should_exit = True


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "before")
