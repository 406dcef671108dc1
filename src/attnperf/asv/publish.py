"""Build the published site: `asv publish`'s pages plus attnperf's own pages.

The pages themselves are rendered by :mod:`attnperf.render.site`; this module
runs ``asv publish``, vendors asv's page scripts (:mod:`attnperf.asv.assets`)
and links attnperf's pages from asv's navigation bar.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from ..io.asv_results import read_asv_conf, read_results
from ..render.site import NAV_MARKER, SUBDIR, MachinePage, write_pages
from .assets import vendor


def link_from_asv(html_dir: Path) -> bool:
    """Add "Roofline (attnperf)" to the navigation bar of asv's index.html (idempotent)."""
    index = Path(html_dir) / "index.html"
    if not index.is_file():
        return False
    text = index.read_text()
    if NAV_MARKER in text:
        return True
    anchor = '<li id="nav-li-regressions">'
    link = (f'{NAV_MARKER}<li id="nav-li-attnperf"><a href="{SUBDIR}/index.html">'
            "Roofline (attnperf)</a></li>\n\t")
    if anchor in text:
        text = text.replace(anchor, link + anchor, 1)
    elif "</body>" in text:  # another asv layout: a plain link at the end
        text = text.replace("</body>", f'{NAV_MARKER}<p><a href="{SUBDIR}/index.html">'
                            "Roofline (attnperf)</a></p></body>", 1)
    else:
        return False
    index.write_text(text)
    return True


# ---------------------------------------------------------------- build -----
@dataclasses.dataclass
class BuildReport:
    out_dir: str
    asv_exit: Optional[int]
    asv_output: str
    pages: List[MachinePage]
    vendored: List[str]
    left_remote: List[str]
    notes: List[str]

    @property
    def has_asv(self) -> bool:
        return self.asv_exit == 0


def _publish_config(conf: dict, conf_dir: Path, results: Path, html: Path, tmp: Path) -> Path:
    """asv.conf.json with absolute paths (asv chdirs to the config's folder)."""
    c = dict(conf)
    for key in ("repo", "benchmark_dir", "env_dir"):
        if isinstance(c.get(key), str) and "://" not in c[key]:
            c[key] = str((conf_dir / c[key]).resolve())
    c["results_dir"], c["html_dir"] = str(results), str(html)
    path = tmp / "asv.conf.json"
    path.write_text(json.dumps(c, indent=2))
    return path


def run_asv_publish(conf: dict, conf_dir: Path, results: Path, html: Path,
                    asv: Optional[str] = None) -> Tuple[int, str]:
    exe = asv or shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if exe is None:
        return 127, "asv is not installed (pip install -e '.[asv]')"
    with tempfile.TemporaryDirectory(prefix="attnperf-publish-") as tmp:
        cfg = _publish_config(conf, conf_dir, results, html, Path(tmp))
        try:
            proc = subprocess.run([exe, "publish", "--no-pull", "--config", str(cfg)],
                                  capture_output=True, text=True, timeout=1800, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 126, f"asv publish could not run: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def build(config: str = "asv.conf.json", results: Optional[str] = None,
          out: Optional[str] = None, publish: bool = True, asv_assets: Optional[str] = None,
          asv: Optional[str] = None) -> BuildReport:
    """asv publish (unless ``publish`` is False), then attnperf's pages and the nav link."""
    conf_path = Path(config).resolve()
    notes: List[str] = []
    try:
        conf = read_asv_conf(str(conf_path))
    except (OSError, ValueError) as exc:
        conf = {}
        notes.append(f"cannot read the asv config {config} ({exc}); asv's pages are not built")
        publish = False
    conf_dir = conf_path.parent
    results_dir = Path(results).resolve() if results else \
        (conf_dir / conf.get("results_dir", "results")).resolve()
    out_dir = Path(out).resolve() if out else (conf_dir / conf.get("html_dir", "html")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    asv_exit, asv_out = None, ""
    if publish:
        asv_exit, asv_out = run_asv_publish(conf, conf_dir, results_dir, out_dir, asv)
        if asv_exit != 0:
            last = [line for line in asv_out.strip().splitlines() if line.strip()][-3:]
            notes.append(f"asv publish exited {asv_exit}: " + " / ".join(last))
    index = out_dir / "index.html"
    has_asv = index.is_file() and "asv.js" in index.read_text(errors="replace") and \
        asv_exit in (0, None)
    vendored: List[str] = []
    left: List[str] = []
    if has_asv:
        link_from_asv(out_dir)
        if asv_assets:
            vendored, left = vendor(out_dir, Path(asv_assets))
            if left:
                notes.append(f"{len(left)} asv page assets still load from a CDN: {', '.join(left)}")
    db = read_results(str(results_dir))
    pages = write_pages(db, out_dir, has_asv, notes)
    if not (out_dir / "index.html").is_file():
        # No asv site: the attnperf index is the landing page.
        (out_dir / "index.html").write_text(
            '<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="0; url={SUBDIR}/index.html"><a href="{SUBDIR}/index.html">attnperf</a>\n')
    return BuildReport(str(out_dir), asv_exit, asv_out, pages, vendored, left, notes)
