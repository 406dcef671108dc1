"""A/B verdicts between two asv runs: asv's own test, the factor, and the exit policy.

Verdict per benchmark mirrors ``asv compare`` (asv/commands/compare.py): a
change is "worse" when after/before > ``factor`` *and* the two sides differ
significantly.  Significance is asv's own test, ``asv._stats.is_different``:
Mann-Whitney U at p < 0.002 on the raw samples when there are enough of them,
else "99 % confidence intervals do not overlap".  asv is a core dependency and
pinned (0.6.6), so its private statistics module is stable here; reproducing
the test with scipy would not reproduce asv's verdicts (exact/approximate U and
tie handling differ).  Views never take part, and the deterministic metrics
(accuracy, peak memory) are judged at their own factors (:mod:`attnperf.analysis.gate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from asv import _stats as _asv_stats

from ..errors import InvalidShapeError, UnknownNameError
from ..io.asv_results import FAILED, MISSING, OK, SKIPPED, Point, ResultsDB, Run
from ..model.catalog import pass_id
from .gate import WORSE_WORDS, is_view, metric_class, metric_factor

P_THRESHOLD = 0.002  # asv's

WORSE, BETTER, BROKE, FIXED, INCOMPARABLE, SAME, NA = (
    "worse", "better", "broke", "fixed", "not comparable", "same", "n/a")
ICON = {WORSE: "🔴", BETTER: "🟢", BROKE: "💥", FIXED: "✅", INCOMPARABLE: "⚪", SAME: "", NA: ""}
CHANGED = (BROKE, WORSE, FIXED, BETTER, INCOMPARABLE)

# The verdict's exit codes (``attnperf.cli.command.ExitCode``: OK, REGRESSION, BROKEN,
# HARNESS): a regression, a broken benchmark and a harness failure never share a code.
EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INFRA, EXIT_BROKEN = 0, 1, 2, 3, 4


@dataclasses.dataclass
class Significance:
    different: bool | None  # None: no statistics, the factor alone decides
    text: str
    p_value: float | None = None


@dataclasses.dataclass
class Row:
    benchmark: str
    params: tuple[str, ...]
    before: Point
    after: Point
    ratio: float | None
    change: str
    significance: Significance
    unit: str | None
    factor: float = 1.0
    # where ``factor`` came from: "factor" (the run's), "calibrated" (the thresholds file),
    # "metric" (a deterministic metric's own), "paired" (the paired re-measurement's)
    source: str = "factor"

    @property
    def kernel(self) -> str:
        return self.params[0] if self.params else ""

    @property
    def problem(self) -> str:
        """The problem id; a training pass's (``TrainingPass``: kernel, problem, pass) ends in
        its pass tag (``_bwd``, ``_fwdbwd``)."""
        if len(self.params) > 2:
            try:
                return pass_id(self.params[1], self.params[2])
            except (UnknownNameError, InvalidShapeError):
                return f"{self.params[1]} {self.params[2]}"
        return self.params[1] if len(self.params) > 1 else ""


@dataclasses.dataclass
class Comparison:
    machine: str
    base: Run | None
    head: Run | None
    factor: float
    rows: list[Row]
    per_benchmark: bool = False  # judged with calibrated thresholds (Row.factor)
    paired_factor: float | None = None  # time rows judged by a paired re-measurement at it

    @property
    def paired(self) -> bool:
        """The time rows were judged by a paired re-measurement (:func:`confirm_paired`)."""
        return self.paired_factor is not None

    def count(self, change: str) -> int:
        return sum(r.change == change for r in self.rows)

    @property
    def own_factors(self) -> bool:
        """Some row was judged at a factor other than ``factor`` (calibrated, or a metric's),
        or by the paired re-measurement."""
        return self.per_benchmark or self.paired or any(r.factor != self.factor for r in self.rows)


# -------------------------------------------------------- statistics ------
def significance(before: Point, after: Point) -> Significance:
    """asv's test where it applies (see module docstring)."""
    sa, sb = before.stats, after.stats
    if not (sa and sb) or sa.get("repeat", 0) == 1 or sb.get("repeat", 0) == 1:
        return Significance(None, "no statistics (factor only)")
    have_ci = all(k in s for s in (sa, sb) for k in ("ci_99_a", "ci_99_b"))
    xa, xb = before.samples, after.samples
    if xa and xb or have_ci:
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
    return Significance(None, "no statistics (factor only)")


# --------------------------------------------------------- comparing ------
def _classify(before: Point, after: Point, vb: str | None, va: str | None, factor: float
              ) -> tuple[str, float | None, Significance]:
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
    b, a = before.value, after.value
    if not b or a is None:  # an ok point always carries its value; no ratio without one
        return NA, None, none
    ratio = a / b
    sig = significance(before, after)
    if sig.different is False:
        return SAME, ratio, sig
    if a > b * factor:
        return WORSE, ratio, sig
    if b > a * factor:
        return BETTER, ratio, sig
    return SAME, ratio, sig


Thresholds = Mapping[tuple[str, tuple[str, ...]], float]


def compare(db: ResultsDB, machine: str, base: Run | None, head: Run | None,
            factor: float, thresholds: Thresholds | None = None,
            metric_rules: bool = True) -> Comparison:
    """Every gated benchmark x combination of the two runs, classified like asv compare.

    ``thresholds`` (``attnperf calibrate``'s file, :mod:`attnperf.io.thresholds`)
    give a combination its own factor; the others are judged at ``factor``.
    With ``metric_rules`` accuracy and peak memory are judged at their fixed factor
    (:data:`attnperf.analysis.gate.METRIC_FACTORS`; a larger calibrated one wins);
    without, every row at ``factor`` as asv itself judged them.
    """
    own: dict[tuple[str, tuple[str, ...]], float] = dict(thresholds or {})
    rows: list[Row] = []
    names = sorted({n for r in (base, head) if r for n in r.benchmarks if not is_view(n)})
    for name in names:
        bb = base.benchmarks.get(name) if base else None
        hb = head.benchmarks.get(name) if head else None
        keys = list(hb.points if hb else {}) + [k for k in (bb.points if bb else {})
                                               if not hb or k not in hb.points]
        for key in keys:
            before = bb.get(*key) if bb else Point(MISSING)
            after = hb.get(*key) if hb else Point(MISSING)
            row_factor = own.get((name, tuple(key)))
            source = "factor" if row_factor is None else "calibrated"
            rule = metric_factor(name) if metric_rules else None
            if rule is not None:
                if row_factor is None or rule >= row_factor:
                    source = "metric"
                row_factor = max(rule, row_factor or rule)
            elif row_factor is None:
                row_factor = factor
            change, ratio, sig = _classify(before, after, bb.version if bb else None,
                                           hb.version if hb else None, row_factor)
            rows.append(Row(name, key, before, after, ratio, change, sig, db.unit(name), row_factor,
                            source))
    return Comparison(machine, base, head, factor, rows, bool(own))


class PairedVerdict(Protocol):
    """What :func:`confirm_paired` reads of one paired re-measurement
    (:class:`attnperf.measure.paired.Paired` has it)."""

    @property
    def ratio(self) -> float: ...
    @property
    def p_slower(self) -> float: ...
    @property
    def p_faster(self) -> float: ...
    @property
    def pairs(self) -> int: ...
    def slower(self, factor: float) -> bool: ...
    def faster(self, factor: float) -> bool: ...


def confirm_paired(comparison: Comparison, paired: Mapping[tuple[str, str], PairedVerdict],
                   factor: float) -> Comparison:
    """The time rows judged again by the paired re-measurement
    (:mod:`attnperf.measure.paired`): ``paired`` maps (kernel, problem id) to a
    result with ``ratio``, ``slower(factor)``, ``faster(factor)``, ``p_slower``
    and ``pairs``.  A time row with a result takes its ratio and its verdict from
    it (``Row.factor`` = ``factor``); the deterministic metrics, broken rows and
    rows without a result keep theirs."""
    rows = []
    for r in comparison.rows:
        result = paired.get((r.kernel, r.problem))
        if result is None or metric_class(r.benchmark) is not None or r.change in (BROKE, FIXED, NA,
                                                                                  INCOMPARABLE):
            rows.append(r)
            continue
        change = WORSE if result.slower(factor) else BETTER if result.faster(factor) else SAME
        p = result.p_faster if change == BETTER else result.p_slower
        sig = Significance(change != SAME, f"paired p={p:.1e} (sign test, {result.pairs} pairs)", p)
        rows.append(dataclasses.replace(r, ratio=result.ratio, change=change, significance=sig,
                                        factor=factor, source="paired"))
    return dataclasses.replace(comparison, rows=rows, paired_factor=factor)


VERDICTS = {EXIT_OK: "ok", EXIT_REGRESSION: "regression", EXIT_USAGE: "input error",
            EXIT_BROKEN: "broken", EXIT_INFRA: "error"}


def decide(asv_exit: int | None, comparison: Comparison | None,
           asv_view: Comparison | None = None,
           asv_finished: bool | None = None) -> tuple[int, str]:
    """THE verdict of a pair of runs: the exit code and one line saying why.

    The job's exit code and the headline of its summary both come from here, so they
    cannot disagree.  Three outcomes are never confused:

    * **broken** (:data:`EXIT_BROKEN`): a benchmark fails at head -- a row that passed at
      base fails, or asv exited 2 and head holds a failed result (a wrong result: the
      suite checks every kernel before timing it, or an error);
    * **harness failure** (:data:`EXIT_INFRA`): asv did not get to its verdict -- no
      results for both commits; ``asv_finished`` False (asv exited without printing its
      comparison: a crash, a fork that failed, a bad argument), whatever rows stale or
      partial result files show; an exit code asv's verdict never gives; exit 1 with no
      row regressed (unless asv flagged rows that the calibrated thresholds, the metrics'
      own factors or the paired re-measurement overrule: ``asv_view``, the same pair
      judged at asv's factor); exit 2 with no failed result at head;
    * **regression** (:data:`EXIT_REGRESSION`): rows slower past their factor, whatever
      asv's exit code (0 or 1; ``None``, asv not run: the rows alone).

    ``asv_finished`` None: unknown (results rendered from disk), the exit code alone.
    """
    if comparison is None or comparison.base is None or comparison.head is None:
        if asv_exit is None:  # rendered from disk: asv did not run, the files are what lacks
            return EXIT_INFRA, ("no readable results for both commits in the results folder "
                                "(asv not run); see the notes in the summary")
        return EXIT_INFRA, ("asv wrote no results for both commits "
                            f"(asv exit {asv_exit}); see the asv log")
    if asv_exit not in (None, 0, 1, 2):  # killed, timed out: never asv's verdict
        return EXIT_INFRA, f"asv continuous exited {asv_exit}; see the asv log"
    if asv_exit == 1 and asv_finished is False:  # (after exit 2 asv prints no table)
        return EXIT_INFRA, (f"asv continuous exited {asv_exit} without its comparison (it "
                            "crashed, could not start a benchmark process, or refused an "
                            "argument): a harness failure, not a verdict; see the asv log")
    failed_at_head = sum(r.after.status == FAILED for r in comparison.rows)
    if comparison.count(BROKE):
        return EXIT_BROKEN, (f"{comparison.count(BROKE)} benchmark(s) fail at head that passed "
                             "at base: a wrong result or an error")
    if asv_exit == 2:
        if failed_at_head:
            return EXIT_BROKEN, ("a benchmark failed (asv continuous exit 2): a wrong result "
                                 "or an error")
        return EXIT_INFRA, ("asv continuous exited 2 but no benchmark failed in the results: "
                            "an asv error, see the log")
    past = ("their calibrated thresholds" if comparison.per_benchmark
            else f"x{comparison.factor:g}")
    if comparison.paired:
        past = f"x{comparison.paired_factor:g} in the paired re-measurement"
    if comparison.count(WORSE):
        return EXIT_REGRESSION, worse_text(comparison, past)
    if asv_exit in (None, 0):
        return EXIT_OK, "no significant regression"
    if asv_view is not None and asv_view.count(WORSE):
        own = ("the paired re-measurement" if comparison.paired else
               "the calibrated thresholds" if comparison.per_benchmark else "each metric's factor")
        return EXIT_OK, (f"no significant regression past {own} (asv "
                         f"flagged {asv_view.count(WORSE)} at its factor x{asv_view.factor:g})")
    return EXIT_INFRA, "asv exited 1 but the results show no regression: an asv error, see the log"


def worse_text(comparison: Comparison, past: str, significant: str = "with significance",
               times: str = "x") -> str:
    """'2 benchmark(s) slower than x1.05 with significance; 1 less accurate (past x1.25)'
    (``significant`` and ``times`` are the words the PR comment uses instead)."""
    worse = [r for r in comparison.rows if r.change == WORSE]
    slower = sum(metric_class(r.benchmark) is None for r in worse)
    parts = ([f"{slower} benchmark(s) slower than {past} {significant}"]
             if slower or not worse else [])
    for kind, word in WORSE_WORDS.items():
        rows = [r for r in worse if metric_class(r.benchmark) == kind]
        if rows:
            parts.append(f"{len(rows)} {word} (past {times}{min(r.factor for r in rows):g})")
    return "; ".join(parts)
