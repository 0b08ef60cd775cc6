"""Every page of the clinic, for every role that may see it, at a desk width and a phone width:
a full-page screenshot (test-artifacts/pages/<role>/<width>/<page>.png), no sideways scroll at
390 and 360 px, and axe-core (npm, pinned in tests/axe/) with 0 serious or critical violations.

PAGES is the inventory; test_inventory_covers_every_html_route fails when a GET route of
web/pages.py or web/token_pages.py that renders HTML is missing from it: a new page is one more
line in PAGES (or in NOT_HTML for a file download).

One browser; one context per role and width, signed in once. Skips when chromium is absent and,
for the axe check only, when `make axe` has not installed axe-core; under OPENITB_REQUIRE_ALL=1
either fails instead."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browserkit import ARTIFACTS, sign_in_page

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "axe" / "node_modules" / "axe-core" / "axe.min.js"
STAFF = ("physician", "nurse")
SIGNED_IN = ("physician", "nurse", "patient", "admin")
# one demo account per role (clinic/demo.py); "anonymous" is nobody signed in
USERS = {"physician": "dr.rivera", "nurse": "nurse.kim", "patient": "leo.carer",
         "admin": "admin", "anonymous": None}
DESK, PHONE, SMALL = (1366, 900), (390, 844), (360, 800)
WIDTHS = {1366: DESK, 390: PHONE, 360: SMALL}
SHOT_WIDTHS = (1366, 390)        # one context each: screenshots and axe at these
NO_SCROLL_WIDTHS = (390, 360)    # no wider document than window (360: the 390 tab narrowed)


@dataclass(frozen=True)
class Page:
    name: str         # the screenshot's file name
    route: str        # the route's path as FastAPI declares it
    url: str          # what is opened: {ITB-1004} is that demo patient's id, {token} a link
    roles: tuple[str, ...]


PAGES = [
    Page("login", "/login", "/login", ("anonymous",)),
    Page("password-link", "/password/{token}", "/password/{token}", ("anonymous",)),
    Page("dashboard", "/", "/", STAFF),
    Page("patients", "/patients", "/patients", STAFF),
    Page("patient-new", "/patients/new", "/patients/new", STAFF),
    Page("patient-implanted", "/patients/{patient_id}", "/patients/{ITB-1004}", STAFF),
    Page("patient-titrating", "/patients/{patient_id}", "/patients/{ITB-1006}", STAFF),
    Page("patient-near-eri", "/patients/{patient_id}", "/patients/{ITB-1001}", STAFF),
    Page("patient-mri", "/patients/{patient_id}", "/patients/{ITB-1005}", STAFF),
    Page("patient-screened", "/patients/{patient_id}", "/patients/{ITB-1011}", STAFF),
    Page("patient-candidate", "/patients/{patient_id}", "/patients/{ITB-1007}", STAFF),
    Page("patient-not-candidate", "/patients/{patient_id}", "/patients/{ITB-1012}", STAFF),
    Page("screening", "/patients/{patient_id}/screening", "/patients/{ITB-1010}/screening",
         ("physician",)),
    Page("implant", "/patients/{patient_id}/implant", "/patients/{ITB-1011}/implant",
         ("physician",)),
    Page("program", "/patients/{patient_id}/program", "/patients/{ITB-1006}/program", STAFF),
    Page("refill", "/patients/{patient_id}/refill", "/patients/{ITB-1004}/refill", STAFF),
    Page("replace", "/patients/{patient_id}/replace", "/patients/{ITB-1001}/replace",
         ("physician",)),
    Page("patient-account", "/patients/{patient_id}/account", "/patients/{ITB-1006}/account",
         STAFF),
    Page("alarms", "/alarms", "/alarms", STAFF),
    Page("alarms-all", "/alarms", "/alarms?all=1", STAFF),
    Page("me", "/me", "/me", ("patient",)),
    Page("own-record", "/patients/{patient_id}", "/patients/{ITB-1006}", ("patient",)),
    Page("admin", "/admin", "/admin", ("admin",)),
    Page("account", "/account", "/account", SIGNED_IN),
    Page("tokens", "/account/tokens", "/account/tokens", SIGNED_IN),
]
# GET routes of the two page routers that answer a file, not a page
NOT_HTML = {"/calendar/{token}/refills.ics", "/patients/{patient_id}/wallet-card.pdf",
            "/patients/{patient_id}/summary.pdf", "/patients/{patient_id}/refill.ics"}

# The outermost elements that stick out of the window, outside any scroll container of their
# own: what makes the page scroll sideways.
OVERFLOW_JS = """() => {
  const W = document.documentElement.clientWidth, out = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string'
       ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const walk = el => {
    for (const c of el.children) {
      const r = c.getBoundingClientRect();
      if (r.right > W + 0.5 && r.width > 0) {
        out.push(name(c) + ' "' + (c.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 40)
                 + '" right edge ' + Math.round(r.right + window.scrollX) + ' px');
        continue;
      }
      const s = getComputedStyle(c);
      if (s.overflowX === 'visible') walk(c);
    }
  };
  walk(document.body);
  if (!out.length)  // a positioned element escaping its scroll container
    for (const c of document.body.querySelectorAll('*')) {
      const r = c.getBoundingClientRect();
      if (r.right > W + 0.5 && r.width > 0 && getComputedStyle(c).position !== 'static')
        out.push(name(c) + ' (positioned) right edge ' + Math.round(r.right + window.scrollX) + ' px');
    }
  return out.slice(0, 6);
}"""


def _axe_source() -> str | None:
    if AXE.is_file():
        return AXE.read_text(encoding="utf-8")
    if os.environ.get("OPENITB_REQUIRE_ALL") == "1":
        pytest.fail(f"OPENITB_REQUIRE_ALL=1 but axe-core is missing ({AXE}): run `make axe`")
    return None


def _url(page: Page, ids: dict[str, int], token: str) -> str:
    url = page.url.replace("{token}", token)
    for mrn in re.findall(r"\{(ITB-\d+)\}", url):
        url = url.replace("{" + mrn + "}", str(ids[mrn]))
    return url


def _context(browser: Any, base: str, role: str, width: int) -> Any:
    w, h = WIDTHS[width]
    # bypass_csp: axe is added as a script the page's CSP would refuse; the pages' own CSP is
    # checked by the API docs test
    ctx = browser.new_context(viewport={"width": w, "height": h}, bypass_csp=True)
    user = USERS[role]
    if user is not None:
        page = ctx.new_page()
        sign_in_page(page, base, user)
        assert "/login" not in page.url, f"{user} could not sign in"
        page.close()
    return ctx


@pytest.fixture(scope="module")
def link_token(server: tuple[str, dict[str, int]], browser: Any) -> str:
    """A real one-time password link (the administrator issues one for mia)."""
    base, _ = server
    ctx = _context(browser, base, "admin", 1366)
    page = ctx.new_page()
    page.goto(f"{base}/admin")
    page.locator("tr", has_text="mia").get_by_role("button", name="Issue a reset link").click()
    page.wait_for_load_state()
    token = str(page.locator("#link-url").input_value()).rsplit("/", 1)[1]
    ctx.close()
    return token


def _axe_failures(page: Any, axe: str, where: str) -> list[str]:
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    out = []
    for v in result["violations"]:
        if v["impact"] not in ("serious", "critical"):
            continue
        for node in v["nodes"][:5]:
            out.append(f"{where}: axe {v['impact']} {v['id']} at {' '.join(node['target'])}: "
                       f"{v['help']} ({v['helpUrl']}); {node.get('failureSummary', '')[:200]}")
    return out


@pytest.mark.parametrize("width", SHOT_WIDTHS)
@pytest.mark.parametrize("role", list(USERS))
def test_every_page(server: tuple[str, dict[str, int]], browser: Any, link_token: str,
                    role: str, width: int) -> None:
    base, ids = server
    pages = [p for p in PAGES if role in p.roles]
    assert pages, f"no page in the inventory for {role}"
    axe = _axe_source()
    out_dir = ARTIFACTS / "pages" / role / str(width)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _context(browser, base, role, width)
    tab = ctx.new_page()
    failures: list[str] = []
    try:
        for p in pages:
            url = _url(p, ids, link_token)
            where = f"{role} at {width} px, {p.name} ({url})"
            resp = tab.goto(base + url)
            tab.wait_for_load_state()
            if resp is None or resp.status != 200 or "text/html" not in resp.headers.get(
                    "content-type", ""):
                failures.append(f"{where}: HTTP {resp.status if resp else '?'} "
                                f"{resp.headers.get('content-type') if resp else ''}")
                continue
            tab.screenshot(path=str(out_dir / f"{p.name}.png"), full_page=True)
            for narrow in NO_SCROLL_WIDTHS if width in NO_SCROLL_WIDTHS else ():
                if narrow != width:  # the same page, the window made narrower
                    tab.set_viewport_size({"width": WIDTHS[narrow][0],
                                           "height": WIDTHS[narrow][1]})
                doc = tab.evaluate("document.documentElement.scrollWidth")
                win = tab.evaluate("window.innerWidth")
                if doc > win:
                    failures.append(f"{role} at {narrow} px, {p.name} ({url}): scrolls sideways, "
                                    f"document {doc} px wide in a {win} px window; sticking "
                                    "out: " + "; ".join(tab.evaluate(OVERFLOW_JS)))
                if narrow != width:
                    tab.set_viewport_size({"width": WIDTHS[width][0], "height": WIDTHS[width][1]})
            if axe is not None:
                failures.extend(_axe_failures(tab, axe, where))
    finally:
        ctx.close()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    if axe is None:
        pytest.skip(f"pages, screenshots and widths checked; axe-core missing ({AXE}): make axe")


def test_inventory_covers_every_html_route() -> None:
    """Every GET route of the page routers is in PAGES (a page) or NOT_HTML (a file)."""
    from fastapi.routing import APIRoute

    from openitb.web import pages, token_pages

    routes = {r.path for router in (pages.router, token_pages.router) for r in router.routes
              if isinstance(r, APIRoute) and "GET" in r.methods}
    listed = {p.route for p in PAGES}
    missing = sorted(routes - listed - NOT_HTML)
    assert not missing, (f"GET routes missing from PAGES in tests/e2e/test_every_page.py "
                         f"(add one line each: name, route, url with real ids, roles): {missing}")
    gone = sorted((listed | NOT_HTML) - routes)
    assert not gone, f"PAGES or NOT_HTML lists routes that no longer exist: {gone}"
    for p in PAGES:
        assert set(p.roles) <= set(USERS), f"{p.name}: unknown role in {p.roles}"


def test_not_html_routes_answer_files(server: tuple[str, dict[str, int]], browser: Any) -> None:
    """The NOT_HTML routes really answer files (so none of them is a page left unchecked)."""
    base, ids = server
    ctx = _context(browser, base, "physician", 1366)
    page = ctx.new_page()
    try:
        for route in sorted(NOT_HTML - {"/calendar/{token}/refills.ics"}):
            resp = page.request.get(base + route.replace("{patient_id}", str(ids["ITB-1004"])))
            assert resp.status == 200, f"{route}: HTTP {resp.status}"
            kind = resp.headers.get("content-type", "")
            assert "html" not in kind, f"{route} answers {kind}: list it in PAGES"
    finally:
        ctx.close()


def test_axe_reports_a_planted_violation(server: tuple[str, dict[str, int]],
                                         browser: Any) -> None:
    """The axe check can fail: an image without text and an empty button are reported."""
    axe = _axe_source()
    if axe is None:
        pytest.skip(f"axe-core missing ({AXE}): make axe")
    base, _ = server
    ctx = _context(browser, base, "anonymous", 1366)
    page = ctx.new_page()
    try:
        page.goto(f"{base}/login")
        page.evaluate("""() => { document.querySelector('main').insertAdjacentHTML('beforeend',
            '<img src="/static/none.png"><button></button>'); }""")
        found = "\n".join(_axe_failures(page, axe, "planted"))
        assert "critical image-alt" in found and "critical button-name" in found, found
    finally:
        ctx.close()
