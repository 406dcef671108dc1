"""The pull-request comment and job summary: asv results of two commits, as markdown.

The verdicts come from :mod:`attnperf.analysis.ab`; this module only renders them.

Built from the result files (:mod:`attnperf.asvresults`), not from asv's
console table, so it can carry what asv does not print: the regime, the
efficiency, correctness and the machine environment.
"""

from __future__ import annotations

import html

from ..analysis import cells as am
from ..analysis.ab import (
    BETTER,
    BROKE,
    CHANGED,
    EXIT_BROKEN,
    EXIT_INFRA,
    EXIT_REGRESSION,
    ICON,
    SAME,
    WORSE,
    Comparison,
    Row,
    compare,
    decide,
    worse_text,
)
from ..analysis.gate import short_name
from ..errors import UnknownNameError
from ..io.asv_results import FAILED, MISSING, SKIPPED, Machine, Point, ResultsDB, Run
from ..io.thresholds import Thresholds
from ..model.catalog import PRESETS, resolve
from . import fmt
from . import markdown as md

MAX_CHARS = 60000  # GitHub refuses comments over 65536 characters
MARKER = "<!-- attnperf-pr-benchmarks -->"

# -------------------------------------------------------- formatting ------
fmt_value = fmt.value  # kept: the name the CI job and older callers import


def fmt_point(p: Point, unit: str | None) -> str:
    if p.status == FAILED:
        return "failed"
    if p.status == SKIPPED:
        return "n/a"
    if p.status == MISSING:
        return "not run"
    text = fmt_value(p.value, unit)
    st = p.stats or {}
    if "q_25" in st and "q_75" in st and p.value:
        text += f" ±{100 * (st['q_75'] - st['q_25']) / 2 / p.value:.2g}%"
    return text


def _problem_label(problem: str) -> str:
    """The problem as a person reads it: its shape, from the id (or an older preset name)."""
    try:
        p = resolve(problem)
    except UnknownNameError:
        return f"{md.code(problem)} <sub>(not a problem id)</sub>"
    names = [name for name, q in PRESETS.items() if q.id == p.id]
    if names:
        return f"{md.text(names[0])} <sub>{md.text(p.id)}</sub>"
    shape = (f"B{p.batch} H{p.heads}" + (f"/{p.kv_heads}kv" if p.kv_heads != p.heads else "")
             + f" S{p.seq_q}" + (f"×{p.seq_kv}" if p.seq_kv != p.seq_q else "")
             + f" D{p.head_dim} {p.dtype}" + (" causal" if p.causal else ""))
    return f"{md.text(p.id)} <sub>{md.text(shape)}</sub>"


def _table(rows: list[Row], cells_before: dict[tuple[str, str], am.Cell],
           cells_after: dict[tuple[str, str], am.Cell],
           per_benchmark: bool = False, factor: float | None = None) -> list[str]:
    out = ["| | benchmark | kernel | problem | before | after | ratio | significance | regime "
           "| efficiency | correctness |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cb = cells_before.get((r.kernel, r.problem))
        ca = cells_after.get((r.kernel, r.problem))
        regime = (ca.regime if ca and ca.regime else cb.regime if cb and cb.regime else "unknown")
        eb = cb.efficiency_pct if cb else None
        ea = ca.efficiency_pct if ca else None
        eff = fmt.pct(ea) if eb is None or ea is None or f"{eb:.3g}" == f"{ea:.3g}" \
            else f"{fmt.pct(eb)} → {fmt.pct(ea)}"
        corr_b = cb.correctness if cb else "not run"
        corr_a = ca.correctness if ca else "not run"
        corr = md.text(corr_a if corr_a == corr_b else f"{corr_b} → {corr_a}")
        if corr_a == "FAILED":
            corr = f"**{corr}**"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        if r.ratio is not None and (per_benchmark or r.factor != factor):
            ratio += f" (×{r.factor:.3g})"
        if r.change == SAME and r.ratio is not None and r.significance.different is False \
                and (r.ratio > r.factor or r.ratio * r.factor < 1):
            ratio = "~" + ratio  # asv's mark: past the factor, but not significant
        # Names from result files are untrusted and escaped (md.text); numbers and
        # verdict words are attnperf's own; _problem_label returns markdown already.
        out.append("| " + " | ".join((
            f"{ICON[r.change]} {r.change}".strip(),
            md.text(short_name(r.benchmark).split(".")[-1]), md.text(r.kernel),
            _problem_label(r.problem), fmt_point(r.before, r.unit), fmt_point(r.after, r.unit),
            ratio, r.significance.text or "—", md.text(regime), eff, corr)) + " |")
    return out


def environment_lines(m: Machine | None, run: Run | None) -> list[str]:
    """The machine's description (asv machine.json + result params) and its ceilings."""
    info: dict[str, object] = dict(run.params) if run else {}
    if m is not None:
        info.update(m.info)
    if not info:
        return ["_No machine description recorded (no machine.json, no result file)._"]
    keys = ["machine", "gpu", "gpu_count", "driver", "cuda", "cudnn", "torch", "python", "cpu",
            "num_cpu", "ram", "os", "arch"]
    keys += sorted(k for k in info if k not in keys)
    lines = ["| field | value |", "|---|---|"]
    lines += [f"| {md.text(k)} | {md.text(info[k])} |" for k in keys if k in info]
    if m is not None and not am.gpu_name(info):
        lines.append("")
        lines.append("_No GPU fields recorded for this machine: CPU times (wall clock), "
                     "no latency benchmark._")
    if m is not None and m.ceilings:
        c = m.ceilings
        mm = ", ".join(f"{k} {fmt.num(v)} TFLOP/s" for k, v in sorted(c["matmul_tflops"].items()))
        lines += ["", f"Measured ceilings: copy {fmt.num(c['bandwidth_gb_s'], '.4g')} GB/s; "
                  f"matmul {md.text(mm)} (measured {md.text(c.get('measured_at', '?'))})."]
    elif m is not None:
        gpu = am.gpu_name(info)
        lines += ["", "No measured ceilings recorded (results/<machine>/attnperf-ceilings.json); "
                  + ("the roofline uses the datasheet of " + md.text(gpu) if gpu else
                     "regimes are unknown unless the RooflineViews were recorded") + "."]
    return lines


def _headline(cmp: Comparison, asv_exit: int | None,
              asv_view: Comparison | None = None,
              verdict: tuple[int, str] | None = None) -> str:
    """The verdict line: :func:`attnperf.analysis.ab.decide`'s verdict (``verdict``, the
    job's exit code and reason; by default decided here from the exit code), in words."""
    worse, broke, better = cmp.count(WORSE), cmp.count(BROKE), cmp.count(BETTER)
    name = md.code(cmp.machine)
    if cmp.base is None or cmp.head is None:
        missing = " and ".join(x for x, r in (("base", cmp.base), ("head", cmp.head)) if r is None)
        return f"⚠️ {name}: no results for the {missing} commit — nothing to compare" + (
            f" (asv continuous exit {asv_exit})" if asv_exit is not None else "")
    code, why = verdict if verdict is not None else decide(asv_exit, cmp, asv_view)
    if code == EXIT_BROKEN:
        return (f"💥 {name}: broken benchmark — "
                + (f"{broke} benchmark(s) failed" if broke else "a benchmark failed")
                + (f"; also {worse} slower" if worse else ""))
    if code == EXIT_REGRESSION:
        past = ("their calibrated thresholds" if cmp.per_benchmark else f"×{cmp.factor:g}")
        if cmp.paired:
            past = f"×{cmp.paired_factor:g} in the paired re-measurement"
        text = worse_text(cmp, past, "(significant)", "×") if worse else ""
        return (f"🔴 {name}: regression — " + "; ".join(
            t for t in (text, f"{broke} benchmark(s) failed at head" if broke else "") if t))
    if code == EXIT_INFRA:
        return f"⚠️ {name}: {md.text(why)}"
    judged = "per-benchmark thresholds" if cmp.per_benchmark else f"factor ×{cmp.factor:g}"
    return f"✅ {name}: no significant regression ({judged})" + (
        f"; {better} faster" if better else "")


def render_section(db: ResultsDB, machine: str, base_commit: str, head_commit: str,
                   factor: float, asv_exit: int | None = None,
                   extra_notes: list[str] | None = None, footer: str = "",
                   thresholds: Thresholds | None = None, asv_factor: float | None = None,
                   comparison: Comparison | None = None,
                   asv_view: Comparison | None = None,
                   verdict: tuple[int, str] | None = None) -> str:
    """The markdown for one machine: verdict, changed benchmarks, environment, notes.

    ``thresholds`` (:class:`attnperf.io.thresholds.Thresholds`): each benchmark is
    judged at its calibrated factor; asv itself ran at ``asv_factor``.  ``comparison``
    and ``asv_view``: the rows the caller judged (``attnperf ci bench``: re-judged by
    the paired re-measurement), so the headline is the verdict its exit code is; by
    default they are computed here from ``db``.  ``verdict``: the caller's
    :func:`~attnperf.analysis.ab.decide` result, the headline's."""
    m = db.machines.get(machine)
    notes = list(extra_notes or [])
    base = head = None
    if m is None:
        notes.append(f"no results for machine {machine!r} under {db.root}/ "
                     f"(machines there: {', '.join(db.machines) or 'none'})")
    else:
        for label, commit in (("base", base_commit), ("head", head_commit)):
            runs = m.runs_for(commit)
            if not runs:
                notes.append(f"no results for the {label} commit {commit[:8]} on {machine!r}")
            elif len(runs) > 1:
                notes.append(f"{len(runs)} environments for {label} {commit[:8]}: "
                             f"using {runs[-1].env_name}")
            if label == "base":
                base = runs[-1] if runs else None
            else:
                head = runs[-1] if runs else None
    cmp = comparison if comparison is not None else compare(
        db, machine, base, head, factor, thresholds.lookup() if thresholds else None)
    if asv_view is None:
        asv_view = compare(db, machine, base, head, asv_factor or factor, metric_rules=False)
    cb = {(c.kernel, c.problem): c for c in am.cells(base, m)} if base and m else {}
    ca = {(c.kernel, c.problem): c for c in am.cells(head, m)} if head and m else {}
    calibrated = "" if thresholds is None else (
        f"per-benchmark thresholds ×{thresholds.smallest() or factor:g}–"
        f"×{max(t.threshold for t in thresholds.entries) if thresholds.entries else factor:g} "
        f"(`attnperf calibrate`: {thresholds.runs} A/A sets × {thresholds.rounds} rounds at "
        f"`{thresholds.commit[:8]}`, {thresholds.created}), others ")
    lines = [f"### {_headline(cmp, asv_exit, asv_view, verdict)}", "",
             f"Base {md.code(base_commit[:8])} → head {md.code(head_commit[:8])} · "
             f"{calibrated}factor ×{factor:g} · "
             f"asv continuous exit {asv_exit if asv_exit is not None else 'not run'} · "
             "lower is better (times; x_over_floor = time / roofline floor; abs errors "
             "against float64; peak memory)", ""]
    changed = [r for r in cmp.rows if r.change in CHANGED]
    changed.sort(key=lambda r: (CHANGED.index(r.change), -(r.ratio or 0)))
    # Combinations with no value and no failure on either side (kernel unavailable,
    # problem outside this machine's grid) are counted, not listed.
    empty = [r for r in cmp.rows if r.change not in CHANGED
             and {r.before.status, r.after.status} <= {SKIPPED, MISSING}]
    rest = [r for r in cmp.rows if r.change not in CHANGED and r not in empty]
    if changed:
        lines += _table(changed, cb, ca, cmp.per_benchmark, factor)
    elif cmp.rows:
        lines.append("No benchmark changed significantly.")
    else:
        lines.append("**No benchmark results to compare.**")
    if rest:
        body = "\n".join(_table(rest, cb, ca, cmp.per_benchmark, factor))
        lines += ["", f"<details><summary>Unchanged or n/a: {len(rest)}</summary>", "", body, "",
                  "</details>"]
    if empty:
        lines += ["", f"{len(empty)} benchmark combinations are n/a on both sides "
                  "(kernel unavailable here, or problem outside this machine's grid)."]
    fails = [r for r in cmp.rows if r.after.status == FAILED]
    if fails:
        lines += [
            "",
            "Failed at head (a wrong result or an error; the asv log artifact has the "
            "message): " + ", ".join(sorted({md.code(f"{r.kernel}/{r.problem}") for r in fails})),
        ]
    lines += ["", f"<details><summary>Environment of <code>{html.escape(machine)}</code></summary>",
              ""]
    lines += environment_lines(m, head or base)
    lines += ["", "</details>"]
    db_notes = db.notes + (m.notes if m else []) + [n for r in (base, head) if r for n in r.notes]
    all_notes = notes + db_notes
    if all_notes:
        lines += ["", "**What is missing or odd:**", ""] + [
            f"- {md.text(n)}" for n in all_notes[:30]
        ]
        if len(all_notes) > 30:
            lines.append(f"- … and {len(all_notes) - 30} more")
    if footer:
        lines += ["", footer]
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_CHARS and rest:
        cut = text.index("<details><summary>Unchanged")
        end = text.index("</details>", cut) + len("</details>")
        text = (
            text[:cut] + f"_{len(rest)} unchanged rows left out (comment size limit)._" + text[end:]
        )
    return text[:MAX_CHARS]


def render_unavailable(machine: str, reason: str) -> str:
    return f"### ⚠️ {md.code(machine)}: no benchmark results\n\n{md.text(reason)}\n"


