#!/usr/bin/env python3
"""Open the built site in real headless Chromium and check that it renders.

    python tools/ci_browser_check.py SITE_DIR [--out ci-artifacts/browser] [--json REPORT]

Drives Debian's Chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-separated JSON) -- no
driver binary, no pip package, no network.  Checks:

* attnperf's pages, from ``file://``: the index, and each machine page --
  no console errors or exceptions; the roofline SVGs hold data points
  (``svg.roofline circle.point``; at least one machine must have some, a
  machine without any is a warning); a screenshot of each;
* asv's pages, served by a local http server on 127.0.0.1: the graph page
  reached by following the first "time" link of a machine page -- no console
  errors, and flot's plot holds data points; a screenshot;
* the same graph from ``file://`` when the site was built for offline use
  (``attnperf-offline.js``: asv's data as scripts, see attnperf.site.offline).

Prints one JSON report (also written to --json) and exits 0 when every page
passed, 1 when one failed, 3 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe"]
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    explicit = os.environ.get("ATTNPERF_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for c in CANDIDATES:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


class CDPError(Exception):
    pass


class Browser:
    """A headless Chromium and one page session, over the DevTools pipe."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="attnperf-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire():  # in the child: the pipe ends become fds 3 and 4
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        targets = self.call("Target.getTargets", timeout=30)["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        target_id = page["targetId"] if page else \
            self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target_id, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method, session=True)
        self.resize(width, height)

    # -------------------------------------------------------- protocol ----
    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[-1] = {"error": {"message": "browser closed the pipe"}}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, params: dict | None = None, session: bool = False,
             timeout: float = 60) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next not in self._replies:
                if -1 in self._replies:
                    raise CDPError(
                        f"{method}: browser exited; stderr: {''.join(self._stderr)[-800:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{method}: no answer in {timeout} s")
                self._cond.wait(left)
            reply = self._replies.pop(self._next)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    # ----------------------------------------------------------- pages ----
    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=True)

    def navigate(self, url: str, timeout: float = 30) -> None:
        mark = len(self.events)
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events[mark:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{url}: no load event in {timeout} s")
                self._cond.wait(left)

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                      session=True)
        if "exceptionDetails" in r:
            return None
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20, interval: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def errors_since(self, mark: int) -> list[str]:
        out = []
        for e in self.events[mark:]:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + (d.get("exception", {}).get("description")
                                            or d.get("text", "")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        return out

    def screenshot(self, path: Path, full_page: bool = False, width: int = 1280) -> None:
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True).get("cssContentSize", {})
            self.resize(width, int(min(max(size.get("height", 900), 600), 6000)))
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        if full_page:
            self.resize(width, 900)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


def serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


POINTS_JS = "document.querySelectorAll('svg.roofline circle.point').length"
ASV_POINTS_JS = """(function () {
  if (!window.$ || !$('#main-graph').data) return 0;
  var plot = $('#main-graph').data('plot');
  if (!plot) return 0;
  var n = 0;
  plot.getData().forEach(function (s) {
    (s.data || []).forEach(function (p) { if (p && p[1] !== null && !isNaN(p[1])) n++; });
  });
  return n;
})()"""


def check(site: Path, out: Path, chromium: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report = {"site": str(site), "chromium": chromium, "pages": [], "ok": True}
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = Browser(chromium)
    try:
        def record(name, url, errors, **extra):
            entry = {"name": name, "url": url, "errors": errors, **extra}
            entry["ok"] = not errors and all(v for k, v in extra.items() if k.endswith("_ok"))
            report["pages"].append(entry)
            report["ok"] = report["ok"] and entry["ok"]
            return entry

        index = site / "attnperf" / "index.html"
        mark = len(browser.events)
        browser.navigate(index.resolve().as_uri())
        machines = (
            browser.evaluate(
                "Array.from(document.querySelectorAll('a.machine'))"
                ".map(a => a.getAttribute('href'))"
            )
            or []
        )
        shot = out / "attnperf-index.png"
        browser.screenshot(shot, full_page=True)
        record("attnperf index (file://)", index.as_uri(), browser.errors_since(mark),
               machines=len(machines), machines_ok=bool(machines), screenshot=str(shot))
        asv_link = None
        for href in machines:
            page = (index.parent / href).resolve()
            mark = len(browser.events)
            browser.navigate(page.as_uri())
            points = browser.evaluate(POINTS_JS) or 0  # static SVG: there at load
            roofs = browser.evaluate("document.querySelectorAll('svg.roofline path.roof').length")
            link = browser.evaluate(
                "(document.querySelector('a.asv-link') || {getAttribute: () => null})"
                ".getAttribute('href')")
            if link and asv_link is None:
                asv_link = urllib.parse.urljoin(base + "attnperf/", link)
            shot = out / f"roofline-{Path(href).stem}.png"
            browser.screenshot(shot, full_page=True)
            entry = record(f"roofline {Path(href).stem} (file://)", page.as_uri(),
                           browser.errors_since(mark), points=points, roofs=roofs,
                           screenshot=str(shot))
            if not points:  # a machine whose latest run measured nothing: said on its page
                entry["warning"] = "no data points on this roofline"
        measured = any(p.get("points") for p in report["pages"])
        if not measured:
            report["ok"] = False
            report["failure"] = "no roofline page has a data point"
        if asv_link is None and measured:
            record("asv graph", None, ["no machine page links to an asv graph although points "
                                       "were measured (asv pages not built?)"])
        elif asv_link is None:
            report["pages"].append({"name": "asv graph", "url": None, "errors": [], "ok": True,
                                    "note": "no measured row, so no link to follow"})
        else:
            mark = len(browser.events)
            browser.navigate(asv_link)
            points = browser.wait_for(ASV_POINTS_JS, timeout=20) or 0
            time.sleep(0.3)  # let flot finish drawing before the screenshot
            title = browser.evaluate("document.getElementById('title') && "
                                     "document.getElementById('title').textContent.trim()")
            shot = out / "asv-graph.png"
            browser.screenshot(shot)
            record("asv graph (http)", asv_link, browser.errors_since(mark), points=points,
                   points_ok=points > 0, title=title, screenshot=str(shot))
            # The same graph from file:// (no server): asv's data comes from the
            # attnperf-offline/ scripts that `attnperf site build` writes next to it.
            if (site / "attnperf-offline.js").is_file():
                file_link = site.as_uri() + "/" + asv_link[len(base):]
                mark = len(browser.events)
                browser.navigate("about:blank")
                browser.navigate(file_link)
                points = browser.wait_for(ASV_POINTS_JS, timeout=20) or 0
                time.sleep(0.3)
                shot = out / "asv-graph-file.png"
                browser.screenshot(shot)
                record("asv graph (file://)", file_link, browser.errors_since(mark),
                       points=points, points_ok=points > 0, screenshot=str(shot))
    finally:
        browser.close()
        server.shutdown()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", help="the built site (attnperf site build --out DIR)")
    ap.add_argument("--out", default="ci-artifacts/browser", help="screenshots go here")
    ap.add_argument("--json", default=None, help="also write the report here")
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("error: Chromium not found (bash tools/install_browser.sh, or set ATTNPERF_CHROMIUM)",
              file=sys.stderr)
        return 3
    site = Path(args.site).resolve()
    if not (site / "attnperf" / "index.html").is_file():
        print(f"error: {site} has no attnperf/index.html (attnperf site build first)",
              file=sys.stderr)
        return 1
    try:
        report = check(site, Path(args.out).resolve(), chromium)
    except CDPError as exc:
        print(f"error: browser: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
