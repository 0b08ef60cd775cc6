"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the clinic
served by uvicorn on loopback, seeded with the demo clinic. Screenshots go to test-artifacts/.

Skips when chromium is absent, except under OPENITB_REQUIRE_ALL=1 (CI), where it fails."""

from __future__ import annotations

import re

import pytest
from browserkit import shot, sign_in

from openitb.clinic.demo import DEMO_PASSWORD

pytestmark = pytest.mark.browser


def test_nurse_refill_with_concentration_change(server: tuple[str, dict[str, int]],
                                                browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "nurse.kim")
    row = page.locator("#dashboard tr", has_text="Hiro Tanaka").filter(has_text="refill due")
    assert row.count() == 1
    shot(page, "01-nurse-dashboard")
    row.get_by_role("link", name="Refill").click()
    page.wait_for_load_state()
    expected = float(re.search(r"([\d.]+)", page.locator("#expected").inner_text()).group(1))
    page.get_by_label("Volume withdrawn (mL)").fill(f"{expected - 0.3:.1f}")
    page.get_by_label("New volume filled (mL)").fill("40")
    page.get_by_label("New concentration (mcg/mL)").select_option("2000")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "bridge bolus" in page.locator("#bridge").inner_text()
    shot(page, "02-nurse-refill-review-bridge")
    page.get_by_label(re.compile("I have checked the discrepancy")).check()
    page.get_by_role("button", name="Perform refill").click()
    page.wait_for_load_state()
    assert "2000 mcg/mL" in page.locator("#dose").inner_text()
    assert "bridge bolus started" in page.locator("#notice").inner_text()
    assert "bridge bolus" in page.locator("#timeline").inner_text()
    shot(page, "03-patient-after-refill")
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_load_state()
    assert page.locator("#dashboard tr", has_text="Hiro Tanaka").filter(
        has_text="refill due").count() == 0
    shot(page, "04-nurse-dashboard-after")


def test_physician_titrates_past_recommended_bound(server: tuple[str, dict[str, int]],
                                                   browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "dr.rivera")
    page.goto(f"{base}/patients/{ids['ITB-1006']}/program")
    page.get_by_label("Daily dose (mcg/day), continuous").fill("130")
    page.locator("#context-titration").check()
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "above recommended" in page.locator("#verdict").inner_text()
    shot(page, "05-physician-review-above-recommended")
    page.get_by_label(re.compile("Override reason")).fill("rebound spasms at night, no sedation")
    page.get_by_label(re.compile("I have reviewed")).check()
    page.get_by_role("button", name="Write to the pump").click()
    page.wait_for_load_state()
    assert "130 mcg/day" in page.locator("#dose").inner_text()
    assert "rebound spasms at night" in page.content()
    shot(page, "06-physician-after-override")


def test_patient_sees_only_own_page(server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "mia")
    assert page.url.endswith("/me")
    assert "Mia Lindqvist" in page.locator("h1").inner_text()
    assert page.locator("#next-refill").is_visible()
    shot(page, "07-patient-own-view")
    resp = page.goto(f"{base}/patients/{ids['ITB-1004']}")
    assert resp is not None and resp.status == 403
    assert "Hiro Tanaka" not in page.content()
    shot(page, "08-patient-refused-other-record")
    resp = page.goto(f"{base}/")
    assert page.url.endswith("/me")


def test_nurse_acknowledges_alarm_with_htmx_and_moves_the_clock(
        server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "nurse.kim")
    page.get_by_role("link", name="Alarm inbox").click()
    page.wait_for_load_state()
    item = page.locator("li", has_text="Motor stopped").filter(has_text="Lucia Garcia").first
    item.get_by_label("What was done").fill("rang the patient: no withdrawal signs; recheck 24 h")
    item.get_by_role("button", name="Acknowledge").click()
    # htmx swaps the item in place (no reload): the form gives way to who acknowledged it.
    item.get_by_text("Acknowledged by Nurse Jae Kim").wait_for(timeout=10_000)
    shot(page, "09-alarm-acknowledged-htmx")
    before = page.locator("#clinic-now").inner_text()
    page.get_by_role("button", name="+1 week").click()
    page.wait_for_load_state()
    after = page.locator("#clinic-now").inner_text()
    assert after != before and after > before
    page.goto(f"{base}/")
    shot(page, "10-dashboard-a-week-later")
    assert page.locator("#dashboard tr", has_text="Lucia Garcia").filter(
        has_text="Motor stopped").count() == 0


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(el => {
  const name = (el.labels && el.labels.length) || el.getAttribute('aria-label')
    || (el.tagName === 'BUTTON' && el.textContent.trim());
  return !name;
}).map(el => el.outerHTML.slice(0, 120))"""


def test_pages_are_labelled_and_keyboard_usable(server: tuple[str, dict[str, int]],
                                                browser: object) -> None:
    base, ids = server
    ctx = browser.new_context()  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.goto(f"{base}/login")
    # Keyboard only: the username field has focus; Tab to the password; Enter submits.
    from playwright.sync_api import expect

    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("dr.rivera")
    page.keyboard.press("Tab")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
    pid = ids["ITB-1001"]
    for path in ("/", "/patients", "/patients/new", f"/patients/{pid}", f"/patients/{pid}/program",
                 f"/patients/{pid}/refill", f"/patients/{ids['ITB-1011']}/screening",
                 f"/patients/{ids['ITB-1011']}/implant", "/alarms"):
        page.goto(f"{base}{path}")
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, path
        assert page.get_attribute("html", "lang") == "en"
    ctx.close()


def test_patient_search_updates_in_place(server: tuple[str, dict[str, int]],
                                         browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "nurse.kim")
    page.goto(f"{base}/patients")
    assert page.locator("#patient-rows tbody tr").count() == 12
    page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    page.get_by_label("Search by name or MRN").type("lind")
    from playwright.sync_api import expect

    expect(page.locator("#patient-rows tbody tr")).to_have_count(1, timeout=10_000)
    assert page.evaluate("window.__marker") == 1
    assert "Mia Lindqvist" in page.locator("#patient-rows").inner_text()
    shot(page, "11-patient-search-htmx")


def test_a_program_changed_after_review_is_not_written(server: tuple[str, dict[str, int]],
                                                       browser: object) -> None:
    """On main: reviewed 330 mcg/day, changed the field to 390, confirmed: 390 was written
    without being reviewed. Now the confirm is bound to the review's token: 409, nothing
    written, and the new value is shown for review."""
    base, ids = server
    pid = ids["ITB-1003"]  # Mia Lindqvist: 300 mcg/day
    page = sign_in(browser, base, "nurse.kim")
    page.goto(f"{base}/patients/{pid}/program")
    dose = page.get_by_label("Daily dose (mcg/day), continuous")
    dose.fill("330")
    page.locator("#context-maintenance").check()
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "330" in page.locator("#review").inner_text()
    page.get_by_label("Daily dose (mcg/day), continuous").fill("390")  # changed after Review
    page.get_by_label(re.compile("I have reviewed the settings")).check()
    with page.expect_response(lambda r: r.request.method == "POST") as resp:  # type: ignore[attr-defined]
        page.get_by_role("button", name="Write to the pump").click()
    assert resp.value.status == 409
    page.wait_for_load_state()
    assert "changed since your review: review again" in page.locator(".error").inner_text()
    assert "390" in page.locator("#review").inner_text()  # the new value, to review
    shot(page, "10-program-changed-after-review")
    page.goto(f"{base}/patients/{pid}")
    assert "300 mcg/day" in page.locator("#dose").inner_text()  # nothing was written


def test_a_refill_changed_after_review_is_not_written(server: tuple[str, dict[str, int]],
                                                      browser: object) -> None:
    """On main: reviewed 500 mcg/mL (no bridge), changed to 1000, confirmed: 1000 mcg/mL was
    written with a bridge bolus never shown. Now: 409, nothing written, the bridge shown."""
    base, ids = server
    pid = ids["ITB-1008"]  # Tomasz Kowalski: 300 mcg/day at 500 mcg/mL
    page = sign_in(browser, base, "nurse.kim")
    page.goto(f"{base}/patients/{pid}/refill")
    expected = float(re.search(r"([\d.]+)", page.locator("#expected").inner_text()).group(1))
    page.get_by_label("Volume withdrawn (mL)").fill(f"{expected - 0.2:.1f}")
    page.get_by_label("New volume filled (mL)").fill("20")
    page.get_by_label("New concentration (mcg/mL)").select_option("500")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "no bridge bolus" in page.locator("#bridge").inner_text()
    page.get_by_label("New concentration (mcg/mL)").select_option("1000")  # changed after Review
    page.get_by_label(re.compile("I have checked the discrepancy")).check()
    with page.expect_response(lambda r: r.request.method == "POST") as resp:  # type: ignore[attr-defined]
        page.get_by_role("button", name="Perform refill").click()
    assert resp.value.status == 409
    page.wait_for_load_state()
    assert "changed since your review: review again" in page.locator(".error").inner_text()
    assert "bridge bolus" in page.locator("#bridge").inner_text()  # now shown, to review
    shot(page, "11-refill-changed-after-review")
    page.goto(f"{base}/patients/{pid}")
    assert "500 mcg/mL" in page.locator("#dose").inner_text()  # nothing was written


def test_replacement_is_reviewed_before_it_is_written(server: tuple[str, dict[str, int]],
                                                       browser: object) -> None:
    base, ids = server
    pid = ids["ITB-1001"]  # Helmut Weber: near ERI
    page = sign_in(browser, base, "dr.rivera")
    page.goto(f"{base}/patients/{pid}/replace")
    page.get_by_label("New pump serial number").fill("SN-E2E-9")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "priming_bolus" in (page.locator("#review-commands").text_content() or "")
    assert "explanted" in page.locator("#explant").inner_text()
    shot(page, "12-replacement-review")
    page.get_by_label(re.compile("I have reviewed the explant")).check()
    page.get_by_role("button", name="Explant the old pump and implant the new one").click()
    page.wait_for_load_state()
    assert "SN-E2E-9" in page.locator("main").inner_text()
    shot(page, "13-replacement-after-review")
