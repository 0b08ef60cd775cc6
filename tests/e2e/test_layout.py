"""Issue 16, layout (items 8 and 10): tables scroll inside their own labelled region, the
header menu collapses on a phone, the charts' labels never overlap in the real browser, and the
API documentation (vendored Swagger UI) renders under the clinic's own CSP."""

from __future__ import annotations

from typing import Any

import pytest
from browserkit import ARTIFACTS, shot, sign_in

pytestmark = pytest.mark.browser

PHONE, DESK = (390, 844), (1366, 900)

# every visible chart text's real box, and the boxes that overlap (in the SVG's own units)
CHART_BOXES_JS = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    if (svg.getBoundingClientRect().width === 0) continue;  // the drawing not shown here
    const boxes = [...svg.querySelectorAll('text')].map(t => {
      const b = t.getBBox(); return {text: t.textContent, x0: b.x, y0: b.y,
                                     x1: b.x + b.width, y1: b.y + b.height}; });
    const vb = svg.viewBox.baseVal, scale = svg.getBoundingClientRect().width / vb.width;
    const clash = [];
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach(b => {
      if (a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1)
        clash.push(a.text + ' / ' + b.text); }));
    const outside = boxes.filter(b => b.x0 < 0 || b.y0 < 0 || b.x1 > vb.width || b.y1 > vb.height)
      .map(b => b.text);
    out.push({cls: svg.getAttribute('class'), n: boxes.length, clash, outside,
              px: 11 * scale});
  }
  return out;
}"""


@pytest.mark.parametrize("viewport", [DESK, PHONE])
def test_chart_labels_apart_and_readable(server: tuple[str, dict[str, int]], browser: Any,
                                         viewport: tuple[int, int]) -> None:
    """Hiro Tanaka's reservoir: refill by, low alarm and empty within six days at the right
    edge (today on main: "mL" over the top tick, "low alarm" and "empty" over the line)."""
    base, ids = server
    page = sign_in(browser, base, "dr.rivera", viewport)
    try:
        for mrn in ("ITB-1004", "ITB-1001", "ITB-1006"):
            page.goto(f"{base}/patients/{ids[mrn]}")
            charts = page.evaluate(CHART_BOXES_JS)
            assert len(charts) == 2, f"{mrn}: {len(charts)} charts shown at {viewport}"
            for c in charts:
                assert c["n"] >= 5, c
                assert not c["clash"], f"{mrn} at {viewport[0]} px, {c['cls']}: {c['clash']}"
                assert not c["outside"], f"{mrn} at {viewport[0]} px, {c['cls']}: {c['outside']}"
                assert c["px"] >= 10.5, f"{mrn}: chart text {c['px']:.1f} px at {viewport[0]} px"
        page.goto(f"{base}/patients/{ids['ITB-1004']}")
        page.locator("figure").first.scroll_into_view_if_needed()
        texts = page.locator("svg.chart:visible text").all_text_contents()
        assert any(t.startswith("low alarm") for t in texts), texts
        assert any(t.startswith("empty") for t in texts), texts
        shot(page, f"layout-chart-{viewport[0]}")
    finally:
        page.context.close()


def test_tables_scroll_in_their_own_region(server: tuple[str, dict[str, int]],
                                           browser: Any) -> None:
    base, ids = server
    page = sign_in(browser, base, "nurse.kim", PHONE)
    try:
        for path, name in (("/patients", "Patients table"),
                           (f"/patients/{ids['ITB-1004']}", "Refills table")):
            page.goto(base + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
            region = page.get_by_role("region", name=name)
            assert region.get_attribute("tabindex") == "0"
            inner, outer = region.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert inner > outer, f"{path}: the table fits ({inner} <= {outer}); test moot"
            region.focus()
            page.keyboard.press("ArrowRight")  # the keyboard scrolls it
            page.wait_for_function("e => e.scrollLeft > 0", arg=region.element_handle())
    finally:
        page.context.close()


def test_menu_collapses_on_a_phone(server: tuple[str, dict[str, int]], browser: Any) -> None:
    base, _ = server
    page = sign_in(browser, base, "nurse.kim", PHONE)
    try:
        nav = page.get_by_role("navigation", name="Main")
        button = page.get_by_role("button", name="Menu")
        assert not nav.is_visible() and button.get_attribute("aria-expanded") == "false"
        button.click()
        assert nav.is_visible() and button.get_attribute("aria-expanded") == "true"
        page.get_by_role("link", name="Alarm inbox").click()
        page.wait_for_load_state()
        assert page.url.endswith("/alarms")
    finally:
        page.context.close()
    page = sign_in(browser, base, "nurse.kim", DESK)
    try:
        assert page.get_by_role("navigation", name="Main").is_visible()
        assert not page.get_by_role("button", name="Menu").is_visible()
    finally:
        page.context.close()


def test_api_docs_render_from_vendored_assets(server: tuple[str, dict[str, int]],
                                              browser: Any) -> None:
    """/api/v1/docs (a 404 on main): Swagger UI from /static/vendor, the clinic's CSP enforced,
    every request to this server only, and the operations listed."""
    base, _ = server
    ctx = browser.new_context(viewport={"width": DESK[0], "height": DESK[1]})
    page = ctx.new_page()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    try:
        resp = page.goto(f"{base}/api/v1/docs")
        assert resp is not None and resp.status == 200
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        page.locator(".opblock").first.wait_for(timeout=20_000)
        summaries = page.locator(".opblock-summary-path").all_inner_texts()
        assert len(summaries) >= 10, summaries
        assert any("/api/v1/patients" in s for s in summaries), summaries
        assert page.locator(".info .title").inner_text().startswith("OpenITB clinic")
        assert hosts == {base.split("/")[2]}, hosts
        assert not errors, errors
        page.screenshot(path=str(ARTIFACTS / "layout-api-docs.png"))
    finally:
        ctx.close()
