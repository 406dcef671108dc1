#!/usr/bin/env python3
"""Open the built site in real headless Chromium and check that it renders.

    python tools/ci_browser_check.py SITE_DIR [--out ci-artifacts/browser] [--json REPORT]

Drives Debian's Chromium with Playwright for Python (its wheel carries the driver; no
``playwright install``, no browser download: ``bash tools/install_browser.sh`` installs both the
pinned Playwright and Chromium).  Checks:

* attnperf's pages, from ``file://``: the index, and each machine page -- no console errors or
  exceptions; the roofline SVGs hold data points (``svg.roofline circle.point``; at least one
  machine must have some, a machine without any is a warning); a screenshot of each;
* asv's pages, served by a local http server on 127.0.0.1: the graph page reached by following
  the first "time" link of a machine page -- no console errors, and flot's plot holds data
  points; a screenshot;
* the same graph from ``file://`` when the site was built for offline use
  (``attnperf-offline.js``: asv's data as scripts, see attnperf.site.offline).

Prints one JSON report (also written to --json) and exits 0 when every page passed, 1 when one
failed, 3 when Chromium or Playwright is missing.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import threading
import urllib.parse
from pathlib import Path

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # the check then exits 3 and the site tests skip, saying why
    sync_playwright = None

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
POINTS_JS = "document.querySelectorAll('svg.roofline circle.point').length"
ASV_POINTS_JS = """() => {
  if (!window.$ || !$('#main-graph').data) return 0;
  var plot = $('#main-graph').data('plot');
  if (!plot) return 0;
  var n = 0;
  plot.getData().forEach(function (s) {
    (s.data || []).forEach(function (p) { if (p && p[1] !== null && !isNaN(p[1])) n++; });
  });
  return n;
}"""


def find_chromium() -> str | None:
    """The Chromium to drive (ATTNPERF_CHROMIUM, else Debian's); None when it or Playwright
    is missing."""
    explicit = os.environ.get("ATTNPERF_CHROMIUM")
    found = [explicit] if explicit else [c if os.path.isabs(c) else shutil.which(c)
                                         for c in CANDIDATES]
    path = next((p for p in found if p and os.access(p, os.X_OK)), None)
    return path if sync_playwright is not None else None


def open_page(pw, chromium: str, width: int = 1280, height: int = 900) -> Page:
    """A page of a new headless Chromium (closed with the Playwright context ``pw``)."""
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    return browser.new_page(viewport={"width": width, "height": height})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


def check(site: Path, out: Path, chromium: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"site": str(site), "chromium": chromium, "pages": [], "ok": True}
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    errors: list[str] = []

    def on_console(msg) -> None:  # a message without arguments is the browser's own log entry
        if msg.type in ("error", "assert"):
            where = "" if msg.args else f" {msg.location.get('url', '')}"
            errors.append(f"console.error: {msg.text}{where}".strip())

    def visit(url: str) -> None:  # the errors of one page at a time
        errors.clear()
        page.goto(url, timeout=30_000)

    def record(name, url, errs, **extra):
        entry = {"name": name, "url": url, "errors": list(errs), **extra}
        entry["ok"] = not errs and all(v for k, v in extra.items() if k.endswith("_ok"))
        report["pages"].append(entry)
        report["ok"] = report["ok"] and entry["ok"]
        return entry

    def graph_points(page: Page) -> int:
        try:
            page.wait_for_function(ASV_POINTS_JS, timeout=20_000)
        except PlaywrightError:
            pass  # no points in time: recorded as 0, the page fails
        page.wait_for_timeout(300)  # let flot finish drawing before the screenshot
        return page.evaluate(ASV_POINTS_JS) or 0

    try:
        with sync_playwright() as pw:
            page = open_page(pw, chromium)
            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"exception: {exc.name}: {exc.message}"))
            index = site / "attnperf" / "index.html"
            visit(index.as_uri())
            machines = page.evaluate("Array.from(document.querySelectorAll('a.machine'))"
                                     ".map(a => a.getAttribute('href'))") or []
            shot = out / "attnperf-index.png"
            page.screenshot(path=shot, full_page=True)
            record("attnperf index (file://)", index.as_uri(), errors, machines=len(machines),
                   machines_ok=bool(machines), screenshot=str(shot))
            asv_link = None
            for href in machines:
                url = (index.parent / href).resolve().as_uri()
                visit(url)
                points = page.evaluate(POINTS_JS) or 0  # static SVG: there at load
                roofs = page.evaluate("document.querySelectorAll('svg.roofline path.roof').length")
                link = page.evaluate("(document.querySelector('a.asv-link') || "
                                     "{getAttribute: () => null}).getAttribute('href')")
                if link and asv_link is None:
                    asv_link = urllib.parse.urljoin(base + "attnperf/", link)
                shot = out / f"roofline-{Path(href).stem}.png"
                page.screenshot(path=shot, full_page=True)
                entry = record(f"roofline {Path(href).stem} (file://)", url, errors,
                               points=points, roofs=roofs, screenshot=str(shot))
                if not points:  # a machine whose latest run measured nothing: said on its page
                    entry["warning"] = "no data points on this roofline"
            measured = any(p.get("points") for p in report["pages"])
            if not measured:
                report["ok"] = False
                report["failure"] = "no roofline page has a data point"
            if asv_link is None and measured:
                record("asv graph", None, ["no machine page links to an asv graph although "
                                           "points were measured (asv pages not built?)"])
            elif asv_link is None:
                report["pages"].append({"name": "asv graph", "url": None, "errors": [], "ok": True,
                                        "note": "no measured row, so no link to follow"})
            else:
                # The graph over http, then from file:// (no server) when the site was built
                # for offline use: asv's data then comes from the attnperf-offline/ scripts.
                graphs = [("http", asv_link, "asv-graph.png")]
                if (site / "attnperf-offline.js").is_file():
                    graphs.append(("file://", site.as_uri() + "/" + asv_link[len(base):],
                                   "asv-graph-file.png"))
                for how, url, name in graphs:
                    visit(url)
                    points = graph_points(page)
                    title = page.evaluate("document.getElementById('title') && "
                                          "document.getElementById('title').textContent.trim()")
                    page.screenshot(path=out / name)
                    record(f"asv graph ({how})", url, errors, points=points, points_ok=points > 0,
                           **({"title": title} if how == "http" else {}),
                           screenshot=str(out / name))
    finally:
        server.shutdown()
        server.server_close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", help="the built site (attnperf site build --out DIR)")
    ap.add_argument("--out", default="ci-artifacts/browser", help="screenshots go here")
    ap.add_argument("--json", default=None, help="also write the report here")
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("error: Chromium or Playwright not found (bash tools/install_browser.sh, or set "
              "ATTNPERF_CHROMIUM)", file=sys.stderr)
        return 3
    site = Path(args.site).resolve()
    if not (site / "attnperf" / "index.html").is_file():
        print(f"error: {site} has no attnperf/index.html (attnperf site build first)",
              file=sys.stderr)
        return 1
    try:
        report = check(site, Path(args.out).resolve(), chromium)
    except PlaywrightError as exc:
        print(f"error: browser: {(str(exc).splitlines() or [type(exc).__name__])[0]}",
              file=sys.stderr)  # Playwright adds a call log below its first line
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
