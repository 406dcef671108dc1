"""The pull-request comment and job summary: asv results of two commits, as markdown.

Built from the result files (:mod:`attnperf.asvresults`), not from asv's
console table, so it can carry what asv does not print: the regime, the
efficiency, correctness and the machine environment.

Verdict per benchmark mirrors ``asv compare`` (asv/commands/compare.py): a
change is "worse" when after/before > ``factor`` *and* the two sides differ
significantly.  Significance is asv's own test, ``asv._stats.is_different``:
Mann-Whitney U at p < 0.002 on the raw samples when there are enough of them,
else "99 % confidence intervals do not overlap".  When asv cannot be imported
the same CI-overlap rule is applied here (documented fallback; no p-value is
then shown).  Views (LatencyViews, RooflineViews) never take part, as in the
suite's gate filter ``-b '^(?!.*Views)'``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Tuple

from . import asvmetrics as am
from .asvresults import FAILED, MISSING, OK, SKIPPED, Machine, Point, ResultsDB, Run

try:  # asv's statistics (pure Python); absent when asv is not installed
    from asv import _stats as _asv_stats
except ImportError:  # pragma: no cover - exercised via monkeypatch in tests
    _asv_stats = None

P_THRESHOLD = 0.002  # asv's
MAX_CHARS = 60000  # GitHub refuses comments over 65536 characters
MARKER = "<!-- attnperf-pr-benchmarks -->"

WORSE, BETTER, BROKE, FIXED, INCOMPARABLE, SAME, NA = (
    "worse", "better", "broke", "fixed", "not comparable", "same", "n/a")
ICON = {WORSE: "🔴", BETTER: "🟢", BROKE: "💥", FIXED: "✅", INCOMPARABLE: "⚪", SAME: "", NA: ""}
CHANGED = (BROKE, WORSE, FIXED, BETTER, INCOMPARABLE)

# Exit codes of tools/ci_bench.py (and how the job reports them).
EXIT_OK, EXIT_REGRESSION, EXIT_BROKEN, EXIT_INFRA = 0, 1, 2, 3


@dataclasses.dataclass
class Significance:
    different: Optional[bool]  # None: no statistics, the factor alone decides
    text: str
    p_value: Optional[float] = None


@dataclasses.dataclass
class Row:
    benchmark: str
    params: Tuple[str, ...]
    before: Point
    after: Point
    ratio: Optional[float]
    change: str
    significance: Significance
    unit: Optional[str]
    factor: float = 1.0

    @property
    def kernel(self) -> str:
        return self.params[0] if self.params else ""

    @property
    def problem(self) -> str:
        return self.params[1] if len(self.params) > 1 else ""


@dataclasses.dataclass
class Comparison:
    machine: str
    base: Optional[Run]
    head: Optional[Run]
    factor: float
    rows: List[Row]

    def count(self, change: str) -> int:
        return sum(r.change == change for r in self.rows)


# -------------------------------------------------------- statistics ------
def _ci_disjoint(a: dict, b: dict) -> Optional[bool]:
    try:
        a0, a1, b0, b1 = a["ci_99_a"], a["ci_99_b"], b["ci_99_a"], b["ci_99_b"]
    except KeyError:
        return None
    return not (a1 >= b0 and a0 <= b1)


def significance(before: Point, after: Point) -> Significance:
    """asv's test where it applies (see module docstring)."""
    sa, sb = before.stats, after.stats
    if not (sa and sb) or sa.get("repeat", 0) == 1 or sb.get("repeat", 0) == 1:
        return Significance(None, "no statistics (factor only)")
    have_ci = all(k in s for s in (sa, sb) for k in ("ci_99_a", "ci_99_b"))
    xa, xb = before.samples, after.samples
    if _asv_stats is not None and (xa and xb or have_ci):
        n = f"n={len(xa)}/{len(xb)}" if xa and xb else ""
        p = None
        if xa and xb:
            p_min = 1 / _asv_stats.binom(len(xa) + len(xb), min(len(xa), len(xb)))
            if p_min < P_THRESHOLD:
                p = _asv_stats.mann_whitney_u(list(xa), list(xb))[1]
        if p is None and not have_ci:
            return Significance(None, f"too few samples ({n}); factor only")
        different = bool(_asv_stats.is_different(list(xa) if xa else None, list(xb) if xb else None,
                                                 sa, sb, P_THRESHOLD))
        if p is not None:
            return Significance(different, f"p={p:.1e} (Mann–Whitney U, {n})", p)
        return Significance(different, "99% CIs disjoint" if different else "99% CIs overlap")
    disjoint = _ci_disjoint(sa, sb)
    if disjoint is None:
        return Significance(None, "no statistics (factor only)")
    return Significance(disjoint, ("99% CIs disjoint" if disjoint else "99% CIs overlap")
                        + " (asv not importable: CI test)")


# --------------------------------------------------------- comparing ------
def _classify(before: Point, after: Point, vb: Optional[str], va: Optional[str], factor: float
              ) -> Tuple[str, Optional[float], Significance]:
    none = Significance(None, "")
    if {before.status, after.status} <= {SKIPPED, MISSING}:
        return NA, None, none
    if vb is not None and va is not None and vb != va:
        return INCOMPARABLE, None, Significance(None, "benchmark version changed")
    if before.status == OK and after.status == FAILED:
        return BROKE, None, none
    if before.status == FAILED and after.status == OK:
        return FIXED, None, none
    if not (before.ok and after.ok):
        return NA, None, none
    ratio = after.value / before.value if before.value else None
    if ratio is None:
        return NA, None, none
    sig = significance(before, after)
    if sig.different is False:
        return SAME, ratio, sig
    if after.value > before.value * factor:
        return WORSE, ratio, sig
    if before.value > after.value * factor:
        return BETTER, ratio, sig
    return SAME, ratio, sig


def compare(db: ResultsDB, machine: str, base: Optional[Run], head: Optional[Run],
            factor: float) -> Comparison:
    """Every gated benchmark x combination of the two runs, classified like asv compare."""
    rows: List[Row] = []
    names = sorted({n for r in (base, head) if r for n in r.benchmarks if not am.is_view(n)})
    for name in names:
        bb = base.benchmarks.get(name) if base else None
        hb = head.benchmarks.get(name) if head else None
        keys = list(hb.points if hb else {}) + [k for k in (bb.points if bb else {})
                                               if not hb or k not in hb.points]
        for key in keys:
            before = bb.get(*key) if bb else Point(MISSING)
            after = hb.get(*key) if hb else Point(MISSING)
            change, ratio, sig = _classify(before, after, bb.version if bb else None,
                                           hb.version if hb else None, factor)
            rows.append(Row(name, key, before, after, ratio, change, sig, db.unit(name), factor))
    return Comparison(machine, base, head, factor, rows)


# -------------------------------------------------------- formatting ------
def fmt_value(value: Optional[float], unit: Optional[str]) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "seconds":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(value) >= scale or suffix == "ns":
                return f"{value / scale:.3g} {suffix}"
    if unit == "x floor":
        return f"{value:.3g}× floor"
    return f"{value:.3g}" + (f" {unit}" if unit else "")


def fmt_point(p: Point, unit: Optional[str]) -> str:
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


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.3g}%"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _problem_label(problem: str) -> str:
    from .shapes import PRESETS
    p = PRESETS.get(problem)
    return f"{problem} <sub>{p.id}</sub>" if p else f"{problem} <sub>(unknown preset)</sub>"


def _table(rows: List[Row], cells_before: Dict, cells_after: Dict) -> List[str]:
    out = ["| | benchmark | kernel | problem | before | after | ratio | significance | regime "
           "| efficiency | correctness |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cb = cells_before.get((r.kernel, r.problem))
        ca = cells_after.get((r.kernel, r.problem))
        regime = (ca.regime if ca and ca.regime else cb.regime if cb and cb.regime else "unknown")
        eb = cb.efficiency_pct if cb else None
        ea = ca.efficiency_pct if ca else None
        eff = _pct(ea) if eb is None or ea is None or f"{eb:.3g}" == f"{ea:.3g}" \
            else f"{_pct(eb)} → {_pct(ea)}"
        corr_b = cb.correctness if cb else "not run"
        corr_a = ca.correctness if ca else "not run"
        corr = corr_a if corr_a == corr_b else f"{corr_b} → {corr_a}"
        if corr_a == "FAILED":
            corr = f"**{corr}**"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        if r.change == SAME and r.ratio is not None and r.significance.different is False \
                and (r.ratio > r.factor or r.ratio * r.factor < 1):
            ratio = "~" + ratio  # asv's mark: past the factor, but not significant
        out.append("| " + " | ".join(_md(x) for x in (
            f"{ICON[r.change]} {r.change}".strip(), am.short_name(r.benchmark).split(".")[-1],
            r.kernel, _problem_label(r.problem), fmt_point(r.before, r.unit),
            fmt_point(r.after, r.unit), ratio, r.significance.text or "—", regime, eff, corr)) + " |")
    return out


def environment_lines(m: Optional[Machine], run: Optional[Run]) -> List[str]:
    """The machine's description (asv machine.json + result params) and its ceilings."""
    info: Dict[str, object] = dict(run.params) if run else {}
    if m is not None:
        info.update(m.info)
    if not info:
        return ["_No machine description recorded (no machine.json, no result file)._"]
    keys = ["machine", "gpu", "gpu_count", "driver", "cuda", "cudnn", "torch", "python", "cpu",
            "num_cpu", "ram", "os", "arch"]
    keys += sorted(k for k in info if k not in keys)
    lines = ["| field | value |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(info[k])} |" for k in keys if k in info]
    if m is not None and not am.gpu_name(info):
        lines.append("")
        lines.append("_No GPU fields recorded for this machine: CPU times (wall clock), "
                     "no latency benchmark._")
    if m is not None and m.ceilings:
        c = m.ceilings
        mm = ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in sorted(c["matmul_tflops"].items()))
        lines += ["", f"Measured ceilings: copy {c['bandwidth_gb_s']:.4g} GB/s; matmul {mm}"
                  f" (measured {c.get('measured_at', '?')})."]
    elif m is not None:
        gpu = am.gpu_name(info)
        lines += ["", "No measured ceilings recorded (results/<machine>/attnperf-ceilings.json); "
                  + ("the roofline uses the datasheet of " + gpu if gpu else
                     "regimes are unknown unless the RooflineViews were recorded") + "."]
    return lines


def _headline(cmp: Comparison, asv_exit: Optional[int]) -> str:
    worse, broke, better = cmp.count(WORSE), cmp.count(BROKE), cmp.count(BETTER)
    name = f"`{cmp.machine}`"
    if cmp.base is None or cmp.head is None:
        missing = " and ".join(x for x, r in (("base", cmp.base), ("head", cmp.head)) if r is None)
        return f"⚠️ {name}: no results for the {missing} commit — nothing to compare" + (
            f" (asv continuous exit {asv_exit})" if asv_exit is not None else "")
    if asv_exit is None:  # rendered from results alone
        code = EXIT_BROKEN if broke else EXIT_REGRESSION if worse else EXIT_OK
        why = ""
    else:
        code, why = decide(asv_exit, cmp)
    if code == EXIT_BROKEN:
        return (f"💥 {name}: broken benchmark — "
                + (f"{broke} benchmark(s) failed" if broke else "a benchmark failed")
                + (f"; also {worse} slower" if worse else ""))
    if code == EXIT_REGRESSION:
        return f"🔴 {name}: regression — {worse} benchmark(s) slower than ×{cmp.factor:g} (significant)"
    if code == EXIT_INFRA:
        return f"⚠️ {name}: {why}"
    return f"✅ {name}: no significant regression (factor ×{cmp.factor:g})" + (
        f"; {better} faster" if better else "")


def render_section(db: ResultsDB, machine: str, base_commit: str, head_commit: str,
                   factor: float, asv_exit: Optional[int] = None,
                   extra_notes: Optional[List[str]] = None, footer: str = "") -> str:
    """The markdown for one machine: verdict, changed benchmarks, environment, notes."""
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
    cmp = compare(db, machine, base, head, factor)
    cb = {(c.kernel, c.problem): c for c in am.cells(base, m)} if base and m else {}
    ca = {(c.kernel, c.problem): c for c in am.cells(head, m)} if head and m else {}
    lines = [f"### {_headline(cmp, asv_exit)}", "",
             f"Base `{base_commit[:8]}` → head `{head_commit[:8]}` · factor ×{factor:g} · "
             f"asv continuous exit {asv_exit if asv_exit is not None else 'not run'} · "
             "lower is better (times; x_over_floor = time / roofline floor)", ""]
    changed = [r for r in cmp.rows if r.change in CHANGED]
    changed.sort(key=lambda r: (CHANGED.index(r.change), -(r.ratio or 0)))
    # Combinations with no value and no failure on either side (kernel unavailable,
    # problem outside this machine's grid) are counted, not listed.
    empty = [r for r in cmp.rows if r.change not in CHANGED
             and {r.before.status, r.after.status} <= {SKIPPED, MISSING}]
    rest = [r for r in cmp.rows if r.change not in CHANGED and r not in empty]
    if changed:
        lines += _table(changed, cb, ca)
    elif cmp.rows:
        lines.append("No benchmark changed significantly.")
    else:
        lines.append("**No benchmark results to compare.**")
    if rest:
        body = "\n".join(_table(rest, cb, ca))
        lines += ["", f"<details><summary>Unchanged or n/a: {len(rest)}</summary>", "", body, "",
                  "</details>"]
    if empty:
        lines += ["", f"{len(empty)} benchmark combinations are n/a on both sides "
                  "(kernel unavailable here, or problem outside this machine's grid)."]
    fails = [r for r in cmp.rows if r.after.status == FAILED]
    if fails:
        lines += ["", "Failed at head (a wrong result or an error; the asv log artifact has the "
                  "message): " + ", ".join(sorted({f"`{r.kernel}/{r.problem}`" for r in fails}))]
    lines += ["", f"<details><summary>Environment of <code>{machine}</code></summary>", ""]
    lines += environment_lines(m, head or base)
    lines += ["", "</details>"]
    db_notes = db.notes + (m.notes if m else []) + [n for r in (base, head) if r for n in r.notes]
    all_notes = notes + db_notes
    if all_notes:
        lines += ["", "**What is missing or odd:**", ""] + [f"- {_md(n)}" for n in all_notes[:30]]
        if len(all_notes) > 30:
            lines.append(f"- … and {len(all_notes) - 30} more")
    if footer:
        lines += ["", footer]
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_CHARS and rest:
        cut = text.index("<details><summary>Unchanged")
        end = text.index("</details>", cut) + len("</details>")
        text = text[:cut] + f"_{len(rest)} unchanged rows left out (comment size limit)._" + text[end:]
    return text[:MAX_CHARS]


def render_unavailable(machine: str, reason: str) -> str:
    return f"### ⚠️ `{machine}`: no benchmark results\n\n{_md(reason)}\n"


VERDICTS = {EXIT_OK: "ok", EXIT_REGRESSION: "regression", EXIT_BROKEN: "broken",
            EXIT_INFRA: "error"}


def decide(asv_exit: Optional[int], comparison: Optional[Comparison]) -> Tuple[int, str]:
    """tools/ci_bench.py's exit code and one line saying why.

    asv exits 1 both for a regression and for its own errors (UserError), so
    exit 1 counts as a regression only when the result files show one.
    """
    if comparison is None or comparison.base is None or comparison.head is None:
        return EXIT_INFRA, ("asv wrote no results for both commits "
                            f"(asv exit {asv_exit}); see the asv log")
    if asv_exit == 2:
        return EXIT_BROKEN, "a benchmark failed (asv continuous exit 2): a wrong result or an error"
    if asv_exit == 1:
        if comparison.count(WORSE) or comparison.count(BROKE):
            return EXIT_REGRESSION, (f"{comparison.count(WORSE)} benchmark(s) slower than "
                                     f"x{comparison.factor:g} with significance")
        return EXIT_INFRA, "asv exited 1 but the results show no regression: an asv error, see the log"
    if asv_exit == 0:
        return EXIT_OK, "no significant regression"
    return EXIT_INFRA, f"asv continuous exited {asv_exit}; see the asv log"
