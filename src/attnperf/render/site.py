"""The published site: `asv publish`'s pages plus attnperf's own static pages.

Layout of the output directory (``html_dir`` of asv.conf.json by default)::

    index.html ...            asv publish (trend graphs per benchmark), with a
                              "Roofline (attnperf)" link added to its navigation bar
    vendor/                   local copies of asv's CDN scripts (--asv-assets)
    attnperf/index.html       machines, latest commit, links
    attnperf/<machine>.html   roofline chart (inline SVG) + latest-commit table
                              per kernel x problem, each row linking to its asv graph;
                              training passes: fwd / bwd / fwd+bwd per kernel x problem
                              (TFLOP/s and roofline efficiency of each pass)
    attnperf/style.css

attnperf's pages are static HTML rendered from Jinja2 templates
(``render/templates/``, autoescaped: every name in a result file is untrusted)
with the data inlined (also as a JSON ``<script type="application/json"
id="attnperf-data">`` block, ``<`` written as ``\u003c``): no fetch(), no CDN,
so they work from ``file://`` as well as from GitHub Pages.  asv's own pages
load JSON with XMLHttpRequest; :mod:`attnperf.site.offline` makes them work
from ``file://`` too.

Links to asv graphs use asv's URL scheme (asv/www/asv.js ``format_hash_string``,
graphdisplay.js ``setup_benchmark_params``)::

    ../index.html#bench_attention.TimeAttention.track_device_time?machine=NAME&p-kernel='tiled'&p-problem='seed'

(parameter values as asv stores them, i.e. their ``repr``; encoded like
JavaScript's ``encodeURIComponent``).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from ..analysis import cells as am
from ..analysis.gate import MAX_ABS_ERROR, MEAN_ABS_ERROR, PEAK_MEMORY, TIME, X_OVER_FLOOR
from ..io.asv_results import FAILED, OK, SKIPPED, Machine, Point, ResultsDB, Run, raw_param
from . import fmt
from .html import render
from .svg import ChartPoint, Roof, colours, roofline_svg

SUBDIR = "attnperf"
NAV_MARKER = "<!-- attnperf-nav -->"
STYLE = Path(__file__).with_name("static") / "style.css"
_URI_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves alone
_RESERVED = {"index", "style"}  # file names of the attnperf folder itself


def page_names(machines: Iterable[str]) -> dict[str, str]:
    """A distinct, file-system-safe page file per machine name.

    A name that is already safe keeps its page (``h100`` -> ``h100.html``); a
    name that had to be changed (``a:b``), that is reserved (``index``,
    ``style``), or that equals another safe name but for case (``H100`` and
    ``h100``, one file on macOS) gets a hash of the real name appended, so
    ``a:b`` and ``a_b`` never overwrite each other's page.
    """
    names = list(machines)
    safe = {m for m in names if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", m)
            and m.casefold() not in _RESERVED}
    folded: dict[str, int] = {}
    for m in safe:
        folded[m.casefold()] = folded.get(m.casefold(), 0) + 1
    out = {}
    for m in names:
        if m in safe and folded[m.casefold()] == 1:
            out[m] = m + ".html"
            continue
        base = re.sub(r"[^A-Za-z0-9._-]", "_", m).lstrip("._-")[:60] or "machine"
        digest = hashlib.sha256(m.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        out[m] = f"{base}-{digest}.html"
    return out


def asv_graph_url(benchmark: str, machine: str, params: list[tuple[str, str]],
                  index: str = "../index.html") -> str:
    """Link into asv's graph page for one benchmark, machine and parameter combination."""
    query = [("machine", machine)] + [(f"p-{name}", raw) for name, raw in params]
    return (f"{index}#{quote(benchmark, safe=_URI_SAFE)}?"
            + "&".join(f"{quote(k, safe=_URI_SAFE)}={quote(v, safe=_URI_SAFE)}" for k, v in query))


def _date(ms: int | None) -> str:
    if ms is None:
        return "unknown date"
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError, TypeError):
        return "unknown date"


def _env_items(m: Machine, run: Run | None) -> list[tuple[str, str]]:
    info: dict[str, object] = dict(run.params) if run else {}
    info.update(m.info)
    return sorted((str(k), str(v)) for k, v in info.items())


@dataclasses.dataclass
class MachinePage:
    machine: str
    file: str
    points: int
    rows: int
    latest: str | None
    roofs: int
    # What could not be read for this page (the machine's and its latest run's files)
    file_notes: tuple[str, ...] = ()


def _roofs(m: Machine, cells: list[am.Cell]) -> list[Roof]:
    dtypes = sorted({c.dtype for c in cells if c.dtype and c.status == OK})
    roofs = []
    for dtype, c in am.ceilings_by_dtype(m, dtypes).items():
        roofs.append(Roof(dtype, c.tflops, c.bandwidth_gb_s, c.source))
    return roofs


def _ceilings_text(m: Machine, roofs: list[Roof]) -> str:
    c = m.ceilings
    if c:
        return (f"measured ceilings: copy {fmt.num(c['bandwidth_gb_s'], '.4g')} GB/s, matmul "
                + ", ".join(f"{k} {fmt.num(v, '.4g')} TFLOP/s"
                            for k, v in sorted(c["matmul_tflops"].items())))
    return "no measured ceilings recorded" + (" (roofs from the datasheet)" if roofs else "")


def machine_page(db: ResultsDB, m: Machine, has_asv: bool,
                 file: str | None = None) -> tuple[str, MachinePage]:
    run = m.latest()
    notes = list(m.notes) + (list(run.notes) if run else [])
    cells = am.cells(run, m) if run else []
    gpu = am.gpu_name(m.info) or (am.gpu_name(run.params) if run else None)
    kernels = sorted({c.kernel for c in cells if c.status == OK})
    roofs = _roofs(m, cells)
    points = [ChartPoint(c.intensity, c.tflops, c.kernel,
                         f"{c.kernel} / {c.problem} ({c.problem_id}): {c.tflops:.3g} TFLOP/s at "
                         f"{c.intensity:.3g} FLOP/B; {fmt.pct(c.efficiency_pct)} of the "
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
    rows = []
    for c in shown:
        b = run.benchmarks.get(TIME) if run else None
        params = [("kernel", raw_param(b, 0, c.kernel)), ("problem", raw_param(b, 1, c.problem))]
        links = [("time", asv_graph_url(TIME, m.name, params)),
                 ("x floor", asv_graph_url(X_OVER_FLOOR, m.name, params))] if has_asv else []
        links += [(label, asv_graph_url(name, m.name, params)) for label, name, value in (
            ("max error", MAX_ABS_ERROR, c.max_abs_error),
            ("mean error", MEAN_ABS_ERROR, c.mean_abs_error),
            ("memory", PEAK_MEMORY, c.peak_memory_bytes)) if has_asv and value is not None]
        rows.append({"cell": c, "colour": col.get(c.kernel, "#000"), "links": links})
    history = [{"short": r.short, "date": _date(r.date), "env": r.env_name,
                "ok": sum(p.status == OK for _, p in _time_points(r)),
                "failed": sum(p.status == FAILED for _, p in _time_points(r))}
               for r in reversed(m.runs)]
    data = {"machine": m.name, "commit": run.commit if run else None,
            "points": [dataclasses.asdict(p) for p in points],
            "roofs": [dict(dataclasses.asdict(r), ridge=r.ridge) for r in roofs],
            "cells": [{"kernel": c.kernel, "problem": c.problem, "status": c.status,
                       "time_s": c.time_s, "tflops": c.tflops, "efficiency_pct": c.efficiency_pct,
                       "x_over_floor": c.x_over_floor, "regime": c.regime,
                       "max_abs_error": c.max_abs_error, "mean_abs_error": c.mean_abs_error,
                       "peak_memory_bytes": c.peak_memory_bytes} for c in shown]}
    passes = am.pass_rows(run, m) if run else []
    modes = list(dict.fromkeys(mode for r in passes for mode in r.passes))
    data["passes"] = [{"kernel": r.kernel, "problem": r.problem,
                       "passes": {k: dataclasses.asdict(v) for k, v in r.passes.items()}}
                      for r in passes]
    html = render("machine.html", title=f"attnperf · {m.name}", data=data, machine=m.name,
                  passes=passes, modes=modes,
                  has_asv=has_asv, gpu=gpu, ceilings_text=_ceilings_text(m, roofs), run=run,
                  runs=m.runs, date=_date, svg=svg, rows=rows, na=len(na),
                  skipped=sum(c.status == SKIPPED for c in na), history=history,
                  env=_env_items(m, run), notes=notes)
    info = MachinePage(m.name, file or page_names([m.name])[m.name], len(points), len(shown),
                       run.commit if run else None, len(roofs),
                       tuple(m.notes) + (tuple(run.notes) if run else ()))
    return html, info


def _time_points(run: Run) -> Iterable[tuple[tuple[str, ...], Point]]:
    b = run.benchmarks.get(TIME)
    return b.points.items() if b else []


def index_page(db: ResultsDB, pages: list[MachinePage], has_asv: bool,
               extra_notes: list[str]) -> str:
    rows = [{"page": p, "device": _device_text(db.machines[p.machine]),
             "commits": len(db.machines[p.machine].runs)} for p in pages]
    return render("index.html", title="attnperf · roofline views", has_asv=has_asv, rows=rows,
                  notes=extra_notes + db.notes,
                  data={"machines": [dataclasses.asdict(p) for p in pages]})


def redirect_page(target: str) -> str:
    return render("redirect.html", target=target)


def _device_text(m: Machine) -> str:
    run = m.latest()
    gpu = am.gpu_name(m.info) or (am.gpu_name(run.params) if run else None)
    return (
        gpu or f"CPU: {m.info.get('cpu') or (run.params.get('cpu') if run else None) or 'unknown'}"
    )


def write_pages(db: ResultsDB, out_dir: Path, has_asv: bool,
                extra_notes: list[str] | None = None) -> list[MachinePage]:
    """attnperf's pages under out_dir/attnperf/; returns what each machine page shows."""
    target = Path(out_dir) / SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STYLE, target / "style.css")
    files = page_names(db.machines)
    pages = []
    for m in db.machines.values():
        html, info = machine_page(db, m, has_asv, files[m.name])
        (target / info.file).write_text(html)
        pages.append(info)
    (target / "index.html").write_text(index_page(db, pages, has_asv, extra_notes or []))
    return pages
