"""The published site: `asv publish`'s pages plus attnperf's own static pages.

Layout of the output directory (``html_dir`` of asv.conf.json by default)::

    index.html ...            asv publish (trend graphs per benchmark), with a
                              "Roofline (attnperf)" link added to its navigation bar
    vendor/                   local copies of asv's CDN scripts (--asv-assets)
    attnperf/index.html       machines, latest commit, links
    attnperf/<machine>.html   roofline chart (inline SVG) + latest-commit table
                              per kernel x problem, each row linking to its asv graph
    attnperf/style.css

attnperf's pages are static HTML with the data inlined (also as a JSON
``<script type="application/json" id="attnperf-data">`` block): no fetch(), no
CDN, so they work from ``file://`` as well as from GitHub Pages.  asv's own
pages load JSON with XMLHttpRequest and need an http server (GitHub Pages, or
``python -m http.server``), which is asv's own limitation.

Links to asv graphs use asv's URL scheme (asv/www/asv.js ``format_hash_string``,
graphdisplay.js ``setup_benchmark_params``)::

    ../index.html#bench_attention.TimeAttention.track_device_time?machine=NAME&p-kernel='tiled'&p-problem='seed'

(parameter values as asv stores them, i.e. their ``repr``; encoded like
JavaScript's ``encodeURIComponent``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import shutil
from html import escape
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

from ..analysis import cells as am
from ..io.asv_results import FAILED, OK, SKIPPED, Machine, ResultsDB, Run, raw_param
from .svg import ChartPoint, Roof, colours, roofline_svg

SUBDIR = "attnperf"
NAV_MARKER = "<!-- attnperf-nav -->"
STYLE = Path(__file__).with_name("static") / "style.css"
_URI_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves alone


def page_name(machine: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", machine) + ".html"


def asv_graph_url(benchmark: str, machine: str, params: List[Tuple[str, str]],
                  index: str = "../index.html") -> str:
    """Link into asv's graph page for one benchmark, machine and parameter combination."""
    query = [("machine", machine)] + [(f"p-{name}", raw) for name, raw in params]
    return (f"{index}#{quote(benchmark, safe=_URI_SAFE)}?"
            + "&".join(f"{quote(k, safe=_URI_SAFE)}={quote(v, safe=_URI_SAFE)}" for k, v in query))


def _fmt(x: Optional[float], spec: str, unit: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{unit}"


def _time(x: Optional[float]) -> str:
    if x is None:
        return "—"
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{x * 1e9:.3g} ns"


def _date(ms: Optional[int]) -> str:
    if ms is None:
        return "unknown date"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _json_block(data) -> str:
    text = json.dumps(data, indent=None, sort_keys=True, allow_nan=False, default=str)
    return text.replace("</", "<\\/")


def _page(title: str, body: str, data=None) -> str:
    blob = (f'<script type="application/json" id="attnperf-data">{_json_block(data)}</script>\n'
            if data is not None else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"stylesheet\" href=\"style.css\">\n</head>\n<body>\n"
            f"{body}\n{blob}</body>\n</html>\n")


def _notes_html(notes: List[str]) -> str:
    if not notes:
        return ""
    items = "\n".join(f"<li>{escape(n)}</li>" for n in notes[:50])
    more = f"<li>… and {len(notes) - 50} more</li>" if len(notes) > 50 else ""
    return f'<section class="notes"><h2>What is missing or odd</h2><ul>\n{items}{more}</ul></section>'


def _env_table(m: Machine, run: Optional[Run]) -> str:
    info: Dict[str, object] = dict(run.params) if run else {}
    info.update(m.info)
    if not info:
        return "<p class=\"missing\">No machine description recorded.</p>"
    rows = "\n".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                     for k, v in sorted(info.items()))
    return f'<table class="env">{rows}</table>'


@dataclasses.dataclass
class MachinePage:
    machine: str
    file: str
    points: int
    rows: int
    latest: Optional[str]
    roofs: int


def _roofs(m: Machine, cells: List[am.Cell]) -> List[Roof]:
    dtypes = sorted({c.dtype for c in cells if c.dtype and c.status == OK})
    roofs = []
    for dtype, c in am.ceilings_by_dtype(m, dtypes).items():
        roofs.append(Roof(dtype, c.tflops, c.bandwidth_gb_s, c.source))
    return roofs


def machine_page(db: ResultsDB, m: Machine, has_asv: bool) -> Tuple[str, MachinePage]:
    run = m.latest()
    notes = list(m.notes) + (list(run.notes) if run else [])
    cells = am.cells(run, m) if run else []
    gpu = am.gpu_name(m.info) or (am.gpu_name(run.params) if run else None)
    kernels = sorted({c.kernel for c in cells if c.status == OK})
    roofs = _roofs(m, cells)
    points = [ChartPoint(c.intensity, c.tflops, c.kernel,
                         f"{c.kernel} / {c.problem} ({c.problem_id}): {c.tflops:.3g} TFLOP/s at "
                         f"{c.intensity:.3g} FLOP/B; {_fmt(c.efficiency_pct, '.3g', '%')} of the "
                         f"roof; {c.regime or 'regime unknown'}", c.problem)
              for c in cells if c.status == OK and c.tflops and c.intensity]
    if run is None:
        notes.append(f"machine {m.name!r} has no readable result files: empty history")
    unknown = sorted({c.problem for c in cells if c.problem_obj is None})
    if unknown:
        notes.append("problems unknown to this attnperf (no shape, so no roofline point): "
                     + ", ".join(unknown))
    if cells and not roofs:
        notes.append("no ceilings for this machine (no attnperf-ceilings.json and no datasheet "
                     "peak for its GPU): the chart has no roofs and regimes may be unknown")
    if run is not None and not any(c.status == OK for c in cells):
        notes.append(f"the latest run ({run.short}) has no successful attention benchmark")
    caption = f"Roofline of {m.name} at {run.short if run else 'no commit'}"
    svg = roofline_svg(points, roofs, groups=kernels, caption=caption)
    col = colours(kernels)
    shown = [c for c in cells if c.status in (OK, FAILED)]
    na = [c for c in cells if c.status not in (OK, FAILED)]
    trs = []
    for c in shown:
        b = run.benchmarks.get(am.TIME) if run else None
        params = [("kernel", raw_param(b, 0, c.kernel)), ("problem", raw_param(b, 1, c.problem))]
        links = [f'<a class="asv-link" href="{escape(asv_graph_url(am.TIME, m.name, params))}">time</a>',
                 f'<a class="asv-link" href="{escape(asv_graph_url(am.X_OVER_FLOOR, m.name, params))}">'
                 "x floor</a>"] if has_asv else ["—"]
        swatch = f'<span class="swatch" style="background:{col.get(c.kernel, "#000")}"></span>'
        corr = ('<span class="ok">ok</span>' if c.status == OK else
                '<span class="bad">FAILED</span>')
        trs.append(
            f'<tr class="status-{c.status}"><td>{swatch}{escape(c.kernel)}</td>'
            f'<td>{escape(c.problem)}<br><small>{escape(c.problem_id or "unknown shape")}</small></td>'
            f"<td>{corr}</td><td>{_time(c.time_s)}</td><td>{_time(c.latency_s)}</td>"
            f"<td>{_fmt(c.tflops, '.3g')}</td><td>{_fmt(c.gb_s, '.3g')}</td>"
            f"<td>{_fmt(c.intensity, '.3g')}</td>"
            f"<td>{escape(c.regime or 'unknown')}"
            f"{'' if c.regime_source != 'from ceilings' else '<sup>*</sup>'}</td>"
            f"<td>{_fmt(c.efficiency_pct, '.3g', '%')}</td><td>{_fmt(c.x_over_floor, '.3g', '×')}</td>"
            f"<td>{' · '.join(links)}</td></tr>")
    table = ("<table class=\"latest\"><thead><tr><th>kernel</th><th>problem</th><th>correctness</th>"
             "<th>device time</th><th>latency</th><th>TFLOP/s</th><th>GB/s</th><th>FLOP/B</th>"
             "<th>regime</th><th>efficiency</th><th>x_over_floor</th><th>asv graphs</th></tr>"
             "</thead><tbody>\n" + "\n".join(trs) + "\n</tbody></table>") if trs else \
        "<p class=\"missing\">No measured or failed combination in the latest run.</p>"
    if na:
        skipped = sum(c.status == SKIPPED for c in na)
        table += (f"<p class=\"muted\">{len(na)} more combinations are n/a here ({skipped} skipped "
                  "by the suite: kernel unavailable or problem outside this machine's grid; "
                  f"{len(na) - skipped} not in the result file).</p>")
    history = "\n".join(
        f"<tr><td><code>{escape(r.short)}</code></td><td>{escape(_date(r.date))}</td>"
        f"<td>{escape(r.env_name)}</td>"
        f"<td>{sum(p.status == OK for _, p in _time_points(r))}</td>"
        f"<td>{sum(p.status == FAILED for _, p in _time_points(r))}</td></tr>"
        for r in reversed(m.runs))
    device = f"GPU: {escape(gpu)}" if gpu else "CPU only (no GPU fields recorded)"
    ceil = m.ceilings
    ceil_text = (f"measured ceilings: copy {ceil['bandwidth_gb_s']:.4g} GB/s, matmul "
                 + ", ".join(f"{k} {v:.4g} TFLOP/s" for k, v in sorted(ceil["matmul_tflops"].items()))
                 if ceil else "no measured ceilings recorded"
                 + (" (roofs from the datasheet)" if roofs else ""))
    nav = ('<nav><a href="index.html">attnperf machines</a>'
           + (' · <a href="../index.html">asv trend graphs</a>' if has_asv else "") + "</nav>")
    body = f"""{nav}
<h1>{escape(m.name)}: roofline at the latest commit</h1>
<p class="meta">{device} · {escape(ceil_text)} · latest commit
<code>{escape(run.commit if run else "none")}</code> ({escape(_date(run.date) if run else "no runs")}),
{len(m.runs)} commit(s) recorded</p>
<figure>{svg}<figcaption>Each point is one kernel × problem of the latest commit: achieved TFLOP/s
(FLOPs of the problem over the median device time) against its arithmetic intensity. Lines: the
memory roof (bandwidth × intensity) up to the ridge point (■), then the compute roof, per dtype.
</figcaption></figure>
<h2>Latest commit, per kernel × problem</h2>
{table}
<p class="muted">device time: CUDA-graph device time per call on GPUs, wall time on CPUs ·
efficiency = share of the binding roof = 100 / x_over_floor · <sup>*</sup> regime classified here
from the ceilings (the suite's RooflineViews were not recorded).</p>
<h2>History</h2>
<table class="history"><thead><tr><th>commit</th><th>commit date</th><th>environment</th>
<th>ok</th><th>failed</th></tr></thead><tbody>
{history}
</tbody></table>
<h2>Environment</h2>
{_env_table(m, run)}
{_notes_html(notes)}"""
    data = {"machine": m.name, "commit": run.commit if run else None,
            "points": [dataclasses.asdict(p) for p in points],
            "roofs": [dict(dataclasses.asdict(r), ridge=r.ridge) for r in roofs],
            "cells": [{"kernel": c.kernel, "problem": c.problem, "status": c.status,
                       "time_s": c.time_s, "tflops": c.tflops, "efficiency_pct": c.efficiency_pct,
                       "x_over_floor": c.x_over_floor, "regime": c.regime} for c in shown]}
    info = MachinePage(m.name, page_name(m.name), len(points), len(shown),
                       run.commit if run else None, len(roofs))
    return _page(f"attnperf · {m.name}", body, data), info


def _time_points(run: Run):
    b = run.benchmarks.get(am.TIME)
    return b.points.items() if b else []


def index_page(db: ResultsDB, pages: List[MachinePage], has_asv: bool,
               extra_notes: List[str]) -> str:
    rows = "\n".join(
        f'<tr><td><a class="machine" href="{escape(p.file)}">{escape(p.machine)}</a></td>'
        f"<td>{escape(_device_text(db.machines[p.machine]))}</td>"
        f"<td><code>{escape((p.latest or 'none')[:8])}</code></td>"
        f"<td>{len(db.machines[p.machine].runs)}</td><td>{p.points}</td><td>{p.roofs}</td></tr>"
        for p in pages)
    table = ("<table><thead><tr><th>machine</th><th>device</th><th>latest commit</th><th>commits"
             "</th><th>points on the roofline</th><th>roofs</th></tr></thead><tbody>\n"
             f"{rows}\n</tbody></table>") if pages else \
        "<p class=\"missing\">No machines: the results directory holds no asv results yet.</p>"
    nav = ('<nav><a href="../index.html">asv trend graphs</a></nav>' if has_asv else
           "<nav>asv's pages were not built (see below)</nav>")
    body = f"""{nav}
<h1>attnperf: roofline views</h1>
<p>Per machine: the latest commit on the roofline, and a table per kernel × problem with regime,
efficiency, x_over_floor and correctness, each row linking to its asv trend graph.</p>
{table}
{_notes_html(extra_notes + db.notes)}"""
    return _page("attnperf · roofline views", body,
                 {"machines": [dataclasses.asdict(p) for p in pages]})


def _device_text(m: Machine) -> str:
    run = m.latest()
    gpu = am.gpu_name(m.info) or (am.gpu_name(run.params) if run else None)
    return gpu or f"CPU: {m.info.get('cpu') or (run.params.get('cpu') if run else None) or 'unknown'}"


def write_pages(db: ResultsDB, out_dir: Path, has_asv: bool,
                extra_notes: Optional[List[str]] = None) -> List[MachinePage]:
    """attnperf's pages under out_dir/attnperf/; returns what each machine page shows."""
    target = Path(out_dir) / SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STYLE, target / "style.css")
    pages = []
    for m in db.machines.values():
        html, info = machine_page(db, m, has_asv)
        (target / info.file).write_text(html)
        pages.append(info)
    (target / "index.html").write_text(index_page(db, pages, has_asv, extra_notes or []))
    return pages


