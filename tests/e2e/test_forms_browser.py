"""Issue 16, forms that keep what was typed (items 4-7 and 9), in real Chromium against the served
demo clinic: each test fails on the code before s19-forms."""

from __future__ import annotations

import re

import pytest
from browserkit import shot, sign_in

from openitb.clinic import labels

pytestmark = pytest.mark.browser


def test_screening_keeps_entries_and_shows_errors_beside_fields(
        server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "dr.rivera", viewport=(1366, 900))
    page.goto(f"{base}/patients/{ids['ITB-1010']}/screening")
    page.fill("#effect_0", "5")
    page.get_by_label("Hip adductors, MAS before 50 mcg").fill("3")
    page.get_by_label("Hip adductors, MAS after 50 mcg").fill("1+")
    page.get_by_label("Knee extensors, MAS before 50 mcg").fill("2")
    page.get_by_label("Knee extensors, MAS after 50 mcg").fill("x")
    page.get_by_role("button", name="Record and evaluate").click()
    page.wait_for_load_state()
    assert page.input_value("#effect_0") == "5"
    assert page.input_value("#after_0_hip_adductors") == "1+"  # kept, and not an error
    bad = page.locator("#after_0_knee_extensors")
    assert bad.input_value() == "x" and bad.get_attribute("aria-invalid") == "true"
    beside = page.locator("#" + bad.get_attribute("aria-describedby"))
    assert "0, 1, 1+, 2, 3 or 4" in beside.inner_text()
    assert "Knee extensors" in beside.inner_text()
    summary = page.locator("#error-summary")
    assert summary.get_by_role("link").count() == 1
    assert "doses[" not in page.locator("main").inner_text()
    assert "hip_adductors" not in page.locator("main").inner_text()
    summary.get_by_role("link").first.click()
    assert page.evaluate("location.hash") == "#after_0_knee_extensors"
    shot(page, "forms-4-screening-errors")
    bad.fill("1")
    page.get_by_role("button", name="Record and evaluate").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/patients/{ids['ITB-1010']}")
    assert "Screened, responder" in page.locator("main").inner_text() or (
        "MAS fell" in page.locator("main").inner_text())


def test_refill_without_the_tick_says_so_and_writes_nothing(
        server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    pid = ids["ITB-1008"]
    page = sign_in(browser, base, "nurse.kim", viewport=(1366, 900))
    page.goto(f"{base}/patients/{pid}/refill")
    expected = float(re.search(r"([\d.]+)", page.locator("#expected").inner_text()).group(1))
    assert "primary" in (page.locator("#review-button").get_attribute("class") or "")
    page.get_by_label("Volume withdrawn (mL)").fill(f"{expected - 0.2:.1f}")
    page.get_by_label("New volume filled (mL)").fill("20")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Perform refill").click()
    page.wait_for_load_state()
    tick = page.locator("#confirmed")
    assert tick.get_attribute("aria-invalid") == "true"
    assert "tick this box" in page.locator("#confirmed-error").inner_text()
    assert page.input_value("#withdrawn_ml") == f"{expected - 0.2:.1f}"  # kept
    # one primary button: the write; "Review again" is an outline button that does not compete
    write_bg = page.eval_on_selector("#write", "e => getComputedStyle(e).backgroundColor")
    again_bg = page.eval_on_selector("#review-button",
                                     "e => getComputedStyle(e).backgroundColor")
    assert again_bg == "rgb(255, 255, 255)" and write_bg != again_bg
    shot(page, "forms-5-refill-no-tick")
    page.goto(f"{base}/patients/{pid}")
    assert "Refill recorded" not in page.locator("main").inner_text()


def test_titration_helper_context_refill_date_and_success(
        server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    pid = ids["ITB-1006"]  # Leo Moreau: 100 mcg/day, cerebral origin, titrating
    page = sign_in(browser, base, "dr.rivera", viewport=(1366, 900))
    page.goto(f"{base}/patients/{pid}/program")
    assert not page.locator("#context-titration").is_checked()
    assert not page.locator("#context-maintenance").is_checked()  # never assumed
    page.get_by_label("Daily dose (mcg/day), continuous").fill("105")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "Context is required" in page.locator("#context-error").inner_text()
    assert page.locator("#review").count() == 0 and page.input_value("#dose_per_day") == "105"
    # the helper: the kernel's steps for a cerebral titration (+5 to 15 % per 24 h)
    steps = page.locator("#steps-titration button")
    labels = steps.all_inner_texts()
    assert "110 mcg/day (+10 %)" in labels and "115 mcg/day (+15 %)" in labels
    assert not any(t.startswith("120 ") for t in labels)  # +20 % is beyond the titration step
    page.locator("#steps-titration button", has_text="110 mcg/day").click()
    assert page.input_value("#dose_per_day") == "110"
    assert page.locator("#context-titration").is_checked()
    shot(page, "forms-6-titration-helper")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert "within" in page.locator("#verdict").inner_text()
    refill = page.locator("#refill-by").inner_text()
    assert "now " in refill and "with this program" in refill and "moves" in refill
    page.get_by_label(re.compile("I have reviewed the settings")).check()
    page.get_by_role("button", name="Write to the pump").click()
    page.wait_for_load_state()
    flash = page.locator("#flash").inner_text()
    assert "Program written: 110 mcg/day (titration)" in flash and "moved to" in flash
    shot(page, "forms-6-titration-written")


def test_implant_is_reviewed_and_its_concentration_comes_from_the_drug_table(
        server: tuple[str, dict[str, int]], browser: object) -> None:
    base, ids = server
    pid = ids["ITB-1011"]  # Omar Haddad: screened, awaiting implant
    page = sign_in(browser, base, "dr.rivera", viewport=(1366, 900))
    for url in (f"/patients/{pid}/implant", f"/patients/{ids['ITB-1001']}/replace"):
        page.goto(base + url)
        conc = page.locator("select[name=concentration]")
        options = conc.locator("option").all_inner_texts()
        assert len(options) >= 3 and all("mcg/mL" in o for o in options)
        assert page.locator("input[name=concentration]").count() == 0  # no free text
    page.goto(f"{base}/patients/{pid}/implant")
    page.get_by_label("Serial number").fill("SN-FORMS-1")
    page.get_by_role("button", name="Review").click()
    page.wait_for_load_state()
    assert page.locator("#review").count() == 1
    page.get_by_role("button", name="Implant, fill, program and prime").click()  # no tick
    page.wait_for_load_state()
    assert "tick this box" in page.locator("#confirmed-error").inner_text()
    page.goto(f"{base}/patients/{pid}")
    assert "SN-FORMS-1" not in page.locator("main").inner_text()  # nothing written


def test_audit_page_is_paged_and_readable(server: tuple[str, dict[str, int]],
                                          browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "admin", viewport=(1366, 900))
    page.goto(f"{base}/admin")
    rows = page.locator("#audit > tbody > tr")
    assert 1 <= rows.count() <= 50
    assert "newest first" in page.locator(".pager").first.inner_text()
    assert "{" not in page.locator("#audit > tbody > tr > td:nth-child(6)").first.inner_text()
    when = page.locator("#audit > tbody > tr > td:first-child").all_inner_texts()
    assert when == sorted(when, reverse=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 6000, height
    details = page.locator("#audit details").first
    details.locator("summary").click()
    assert details.locator("table.changes th", has_text="Field").count() == 1
    page.select_option("#f-action", "implant")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    actions = set(page.locator("#audit > tbody > tr > td:nth-child(3)").all_inner_texts())
    assert actions == {labels.human("implant")}
    shot(page, "forms-9-audit")
    assert "leo.carer" in page.locator("main").inner_text()
    carer = page.locator("tr", has_text="leo.carer")
    assert "Leo Moreau" in carer.inner_text()  # the linked patient by name, not a number


def test_acknowledge_without_a_note_says_it_in_words(server: tuple[str, dict[str, int]],
                                                     browser: object) -> None:
    base, ids = server
    page = sign_in(browser, base, "nurse.kim", viewport=(1366, 900))
    page.goto(f"{base}/alarms")
    form = page.locator("form[hx-post]").first
    form.evaluate("f => f.noValidate = true")  # what the server says, not the browser
    form.locator("input[name=note]").fill("  ")
    form.get_by_role("button", name="Acknowledge").click()
    page.wait_for_timeout(500)
    text = page.locator("main").inner_text()
    assert "Note is required (at least 3 characters, saying what was done)." in text
    assert "got ''" not in text
