"""Drives Debian's Chromium through nhacviec's pages, for tests/it/browser.rs.

The Rust test starts the daemon, then runs this script with the venv's Python (which has
the pinned `playwright` of tests/browser/requirements.txt; Playwright's own browser is
never downloaded: it drives /usr/bin/chromium, given as `chromium` below) and one JSON
argument:

    driver.py '{"chromium": "/usr/bin/chromium", "base": "http://127.0.0.1:PORT",
                "password": "...", "eml": "PATH.eml", "mark": "RULE/PERIOD/UNIT",
                "unit_page": "URL", "unit_done": "RULE/PERIOD/UNIT", "out": "DIR"}'

It does what a person would, in this order, and records what each page showed:

1. `ack`: the ack link of the message `eml` (decoded from its text part by Python's MIME
   parser), opened at desktop width (1280 px) and screenshotted (`ack.png`), then at
   phone width (390 px, `ack-phone.png`), where it clicks "Đã nhận" and screenshots the
   result (`ack-phone-seen.png`).
2. `status`: /status with a wrong password (the 401 page), then with `admin` and the
   password (Playwright's `http_credentials`: the browser answers the Basic challenge);
   the grid read from the DOM, screenshotted (`status.png`); a click on "Đánh dấu hoàn
   thành" in the cell `td[data-key=mark]`; the page the form's POST returns; /status
   loaded again (`status-done.png`), and at phone width (`status-phone.png`).
3. `unit`: the unit page `unit_page` at desktop width (`unit.png`), then at a small phone's
   width (360 px, `unit-phone.png`), where it clicks "Đã hoàn thành / đã nộp" in the
   obligation `unit_done` and reads the page it lands on (`unit-phone-done.png`).

It prints one JSON object on stdout: what each page showed (texts, `data-` attributes,
computed colours, the fonts Chromium drew the text with, button sizes, the page's width),
and the Rust test asserts on it. Any failure (a missing element, a timeout) is a Python
exception: traceback on stderr, exit 1. It never waits longer than TIMEOUT_MS per action
(LAUNCH_TIMEOUT_MS for starting Chromium).

Chromium runs headless with the flags this machine needs (as root: --no-sandbox; no
background connections, which the closed network refuses) and a fresh profile directory
that Playwright makes and removes.
"""

import email
import email.policy
import json
import re
import sys
import time

from playwright.sync_api import sync_playwright

TIMEOUT_MS = 15_000
# Starting Chromium takes longest, and longer still while the other integration tests load
# both cores (a 15 s launch timed out in CI beside the 500-event burst tests).
LAUNCH_TIMEOUT_MS = 60_000

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What a page shows, read in the page (no JavaScript of the product's: there is none).
READ_PAGE = """() => {
  const text = (e) => e ? e.textContent.replace(/\\s+/g, ' ').trim() : null;
  const label = (e) => e ? {
      class: e.className, text: text(e),
      background: getComputedStyle(e).backgroundColor, color: getComputedStyle(e).color,
  } : null;
  const box = (e) => { const r = e.getBoundingClientRect();
      return {width: Math.round(r.width), height: Math.round(r.height)}; };
  const buttons = [...document.querySelectorAll('main button')].map((b) => ({
      text: text(b), background: getComputedStyle(b).backgroundColor,
      color: getComputedStyle(b).color, font_size: getComputedStyle(b).fontSize, ...box(b),
  }));
  const fields = {};
  for (const dt of document.querySelectorAll('dl dt')) fields[text(dt)] = text(dt.nextElementSibling);
  const grid = document.querySelector('table#grid');
  const table = grid ? {
    columns: [...grid.querySelectorAll('thead th[data-key]')].map((th) => ({
        key: th.dataset.key, lines: th.innerText.split('\\n').map((l) => l.trim()) })),
    corner: text(grid.querySelector('thead th')),
    rows: [...grid.querySelectorAll('tbody tr')].map((tr) => ({
        unit: tr.dataset.unit, name: text(tr.querySelector('th')),
        cells: [...tr.querySelectorAll('td')].map((td) => ({
            key: td.dataset.key || null, state: td.dataset.state || null,
            label: label(td.querySelector('span.state')),
            at: text(td.querySelector('span.note')),
            button: text(td.querySelector('form button')),
            obligation: td.querySelector('form input[name=obligation]')?.value ?? null,
            csrf: td.querySelector('form input[name=csrf]')?.value ?? null,
        })),
    })),
  } : null;
  return {
    url: location.href, title: document.title, lang: document.documentElement.lang,
    header: text(document.querySelector('header')), h1: text(document.querySelector('h1')),
    result: text(document.querySelector('.result')),
    state: label(document.querySelector('dd .state')),
    fields, buttons, grid: table,
    legend: [...document.querySelectorAll('p.note .state')].map(label),
    page_width: document.documentElement.scrollWidth,
    viewport_width: window.innerWidth,
    header_background: getComputedStyle(document.querySelector('header')).backgroundColor,
  };
}"""


# A unit page: its open and done lists, read in the page.
READ_UNIT = """() => {
  const text = (e) => e ? e.textContent.replace(/\\s+/g, ' ').trim() : null;
  const items = (id) => [...document.querySelectorAll(`#${id} section.ob`)].map((s) => {
    const st = s.querySelector('.state');
    return {
      key: s.dataset.key, title: text(s.querySelector('h3')), left: text(s.querySelector('.left')),
      state: st ? {text: text(st), background: getComputedStyle(st).backgroundColor,
                   color: getComputedStyle(st).color} : null,
      buttons: [...s.querySelectorAll('button')].map((b) => {
        const r = b.getBoundingClientRect();
        return {text: text(b), width: Math.round(r.width), height: Math.round(r.height)};
      }),
    };
  });
  return {
    url: location.href, title: document.title, h1: text(document.querySelector('h1')),
    result: text(document.querySelector('.result')),
    open: items('open'), done: items('done'),
    feed: document.querySelector('a[href$=".ics"]')?.textContent ?? null,
    page_width: document.documentElement.scrollWidth, viewport_width: window.innerWidth,
  };
}"""


def ack_link(path, base):
    """The one ack link in the text part of a message file, decoded."""
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    links = sorted(set(re.findall(re.escape(base) + r"/a/[0-9a-f]+", text)))
    if len(links) != 1:
        raise SystemExit(f"expected one ack link to {base} in {path}, found {links}:\n{text}")
    return links[0]


def fonts(page, selector):
    """The platform fonts Chromium drew the text of `selector` with (CSS domain of CDP):
    a glyph missing from the chosen font shows up here as a second, fallback font."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    used = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return [{"family": f["familyName"], "glyphs": f["glyphCount"]} for f in used]


def read(page, font_selectors=()):
    seen = page.evaluate(READ_PAGE)
    seen["fonts"] = {s: fonts(page, s) for s in font_selectors}
    return seen


def main(report):
    args = json.loads(sys.argv[1])
    base, out = args["base"], args["out"]
    report["screenshots"] = []
    started = time.monotonic()

    def shot(page, name):
        path = f"{out}/{name}"
        page.screenshot(path=path, full_page=True)
        report["screenshots"].append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args["chromium"], headless=True, args=FLAGS, timeout=LAUNCH_TIMEOUT_MS
        )
        report["browser"] = browser.version
        desktop = {"viewport": {"width": 1280, "height": 800}, "locale": "vi-VN"}
        phone = {
            "viewport": {"width": 390, "height": 844},
            "device_scale_factor": 1,
            "is_mobile": True,
            "has_touch": True,
            "locale": "vi-VN",
        }

        # 1. The ack page of the message, at desktop then phone width; "Đã nhận" on the phone.
        link = ack_link(args["eml"], base)
        report["ack_link"] = link
        ctx = browser.new_context(**desktop)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(link)
        report["ack"] = {"http": r.status, **read(page, ["h1", "dd .state", "main button"])}
        shot(page, "ack.png")
        ctx.close()

        ctx = browser.new_context(**phone)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(link)
        report["ack_phone"] = {"http": r.status, **read(page)}
        shot(page, "ack-phone.png")
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Đã nhận", exact=True).click()
        report["ack_seen"] = {"http": nav.value.status, **read(page)}
        shot(page, "ack-phone-seen.png")
        ctx.close()

        # 2. The status page: refused with a wrong password, then the grid, then one click.
        # (A context with no credentials at all cannot show the 401 page: Playwright then
        # cancels the Basic challenge and Chromium fails the navigation with
        # ERR_INVALID_AUTH_CREDENTIALS instead of showing the page's body.)
        wrong = {"username": "admin", "password": "sai mật khẩu"}
        ctx = browser.new_context(http_credentials=wrong, **desktop)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(f"{base}/status")
        report["status_wrong_password"] = {
            "http": r.status,
            "www_authenticate": r.headers.get("www-authenticate"),
            "h1": page.locator("h1").text_content(),
        }
        ctx.close()

        creds = {"username": "admin", "password": args["password"]}
        ctx = browser.new_context(http_credentials=creds, **desktop)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(f"{base}/status")
        report["status"] = {"http": r.status, **read(page, ["h1", "table#grid tbody th"])}
        shot(page, "status.png")
        cell = page.locator(f'td[data-key="{args["mark"]}"]')
        with page.expect_navigation() as nav:
            cell.get_by_role("button", name="Đánh dấu hoàn thành").click()
        report["status_marked"] = {"http": nav.value.status, **read(page)}
        r = page.goto(f"{base}/status")
        report["status_again"] = {"http": r.status, **read(page)}
        shot(page, "status-done.png")
        ctx.close()

        ctx = browser.new_context(http_credentials=creds, **phone)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(f"{base}/status")
        report["status_phone"] = {"http": r.status, **read(page)}
        shot(page, "status-phone.png")
        ctx.close()

        # 3. The unit's page: desktop, then a small phone, where the unit says it is done.
        ctx = browser.new_context(**desktop)
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(args["unit_page"])
        report["unit"] = {"http": r.status, **page.evaluate(READ_UNIT)}
        shot(page, "unit.png")
        ctx.close()

        ctx = browser.new_context(**{**phone, "viewport": {"width": 360, "height": 740}})
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        r = page.goto(args["unit_page"])
        report["unit_phone"] = {"http": r.status, **page.evaluate(READ_UNIT)}
        shot(page, "unit-phone.png")
        item = page.locator(f'#open section[data-key="{args["unit_done"]}"]')
        with page.expect_navigation() as nav:
            item.get_by_role("button", name="Đã hoàn thành / đã nộp").click()
        report["unit_phone_done"] = {"http": nav.value.status, **page.evaluate(READ_UNIT)}
        shot(page, "unit-phone-done.png")
        ctx.close()
        browser.close()

    report["seconds"] = round(time.monotonic() - started, 2)
    return report


if __name__ == "__main__":
    partial = {}
    try:
        partial = main(partial)
    finally:
        # What was seen so far, also when a step failed (its traceback goes to stderr).
        json.dump(partial, sys.stdout, ensure_ascii=False, indent=1)
