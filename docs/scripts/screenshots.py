#!/usr/bin/env python3
"""Make the pictures of the front page from the committed results.

    python docs/scripts/screenshots.py [--out docs/img] [--machine h100] [--only NAME]

* ``pr-comment.png``: ``attnperf pr-comment`` for the two latest commits of the
  machine's committed history, rendered as HTML the way GitHub shows a comment
  (the unchanged rows folded), in headless Chromium;
* ``site.png``: ``attnperf site build`` of ``results/``, the machine's roofline page.

Needs the docs extra (Python-Markdown, for the comment) and Chromium
(``bash tools/install_browser.sh``; ``fonts-noto-color-emoji`` for the verdict
marks, and Playwright for Python); drives Chromium the way the site's browser
check (``tools/ci_browser_check.py``) does.
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import markdown

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
from ci_browser_check import find_chromium, open_page, sync_playwright  # noqa: E402

ATTNPERF = [sys.executable, "-m", "attnperf"]
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>PR comment</title><style>
body {{ font: 14px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328;
       background: #fff; margin: 24px; }}
.comment {{ border: 1px solid #d1d9e0; border-radius: 6px; max-width: 1220px; }}
.who {{ background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px; color: #59636e; }}
.who b {{ color: #1f2328; }}
.body {{ padding: 8px 16px 16px; }}
h3 {{ font-size: 16px; margin: 8px 0; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 8px 0; }}
th, td {{ border: 1px solid #d1d9e0; padding: 4px 8px; }}
tr:nth-child(2n) td {{ background: #f6f8fa; }}
code {{ background: #eff1f3; border-radius: 4px; padding: 1px 4px; font-size: 85%; }}
sub {{ color: #59636e; }}
</style></head><body><div class="comment">
<div class="who"><b>github-actions</b> bot commented · {title}</div>
<div class="body">{body}</div></div></body></html>
"""


def latest_commits(machine_dir: Path, n: int = 2) -> list:
    """The commit hashes of the machine's n latest asv result files, oldest first."""
    runs = []
    for path in machine_dir.glob("*.json"):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("commit_hash") and data.get("date"):
            runs.append((data["date"], data["commit_hash"]))
    return [commit for _, commit in sorted(runs)[-n:]]


def pr_comment_html(machine: str, work: Path) -> Path:
    base, head = latest_commits(REPO / "results" / machine)
    md_file = work / "comment.md"
    subprocess.run([*ATTNPERF, "pr-comment", "--machine", machine, "--base", base, "--head", head,
                    "-o", str(md_file)], cwd=REPO, check=True)
    body = markdown.markdown(md_file.read_text(), extensions=["tables"])
    page = work / "comment.html"
    page.write_text(
        PAGE.format(title=html.escape(f"{machine}: {base[:8]} → {head[:8]}"), body=body)
    )
    return page


def site_page(machine: str, work: Path) -> Path:
    site = work / "site"
    subprocess.run(
        [*ATTNPERF, "site", "build", "--no-asv", "--out", str(site)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return site / "attnperf" / f"{machine}.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--machine", default="h100", help="a machine of results/ (default h100)")
    parser.add_argument("--only", choices=["pr-comment", "site"], action="append")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("error: Chromium or Playwright not found (bash tools/install_browser.sh)",
              file=sys.stderr)
        return 3
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.only or ["pr-comment", "site"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pages = {"pr-comment": (pr_comment_html, 1280, 440), "site": (site_page, 1280, 900)}
        with sync_playwright() as pw:
            browser = open_page(pw, chromium)
            for name in wanted:
                make, width, height = pages[name]
                page = make(args.machine, work)
                browser.set_viewport_size({"width": width, "height": height})
                browser.goto(page.as_uri())
                browser.screenshot(path=args.out / f"{name}.png")
                print(f"wrote {args.out / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
