"""asv's pages from ``file://``: its JSON data written as scripts, and a jQuery transport.

asv's pages fetch ``info.json``, ``index.json``, ``graphs/**.json`` and
``regressions.json`` with ``$.ajax`` (asv 0.6.6 www/asv.js, graphdisplay.js,
regressions.js), which browsers refuse on ``file://``.  :func:`add` writes every
JSON file of the built site once more as ``attnperf-offline/<path>.js`` (a
script calling ``attnperfOfflineData(path, data)``) and puts
``attnperf-offline.js`` (``www/``) into asv's ``index.html`` right before
``asv.js``: on ``file://`` it answers asv's requests from those scripts, over
http it steps aside.  Scripts load from ``file://`` where requests do not, so
the history graphs work with no server and no network -- provided jQuery and
flot are local too (:mod:`attnperf.site.assets`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..render.html import SCRIPT_SAFE

SHIM = Path(__file__).with_name("www") / "attnperf-offline.js"
DATA_DIR = "attnperf-offline"
_ASV_JS = re.compile(r"<script\b[^>]*\bsrc=\"asv\.js\"", re.S)


def add(html_dir: Path) -> int:
    """Write the offline copies of asv's data and hook the shim in; returns the file count
    (0 when ``index.html`` is not asv's page)."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    text = index.read_text()
    if SHIM.name in text:
        return 0
    m = _ASV_JS.search(text)
    if m is None:
        return 0
    count = 0
    for path in sorted(html_dir.rglob("*.json")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] == DATA_DIR:
            continue
        data = json.loads(path.read_text())
        key = json.dumps(rel.as_posix())
        body = json.dumps(data, separators=(",", ":"), allow_nan=True).translate(SCRIPT_SAFE)
        dest = html_dir / DATA_DIR / f"{rel.as_posix()}.js"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f"attnperfOfflineData({key}, {body});\n")
        count += 1
    shutil.copyfile(SHIM, html_dir / SHIM.name)
    tag = f'<script src="{SHIM.name}"></script>\n    '
    index.write_text(text[:m.start()] + tag + text[m.start():])
    return count
