"""Bisecting a slowdown between two commits: pure logic over asv results.

``attnperf bisect GOOD BAD`` (the CLI) asks :func:`bisect` for a verdict and
hands it a ``fetch(commit) -> Run | None`` callback that measures a commit (or
reuses its results) with asv; everything here is decided from result data, so
it is testable without asv.

The algorithm:

1. **GOOD vs BAD** with asv's own test (:func:`attnperf.analysis.ab.compare`:
   Mann-Whitney U + factor, the test ``asv continuous`` applies) over the gated
   benchmarks that match the regex.  No row is ``worse`` -> *no significant
   regression* (asv find would still name a "greatest regression").  A
   benchmark that passed at GOOD and fails at BAD (a wrong result or an
   error) -> *broken*, named, and no search: a timing is no verdict on a
   kernel that fails its check.  Every
   row n/a (a GPU-only problem on a CPU, a benchmark that does not exist at
   either end) -> *nothing to compare*.
2. **Binary search** over ``git rev-list GOOD..BAD`` (oldest first, BAD last)
   on the slowest row (largest significant ratio).  A commit is *bad* when its
   value lies above the geometric midpoint of GOOD's and BAD's values (it has
   taken most of the step), else *good*.  A commit without a value there (n/a,
   failed, not built) is skipped like ``git bisect skip``: the next candidate
   nearest to the middle is tried; if only skipped commits remain between the
   last good and the first bad one, the culprit is one of them (reported as a
   range).
3. **Confirmation**: the named commit against its parent with the same test
   at the same factor.  ``confirmed`` is False when that step alone is not a
   significant slowdown (the regression came in several smaller steps, or
   noise moved the search); the verdict says so instead of blaming.

With ``confirm`` (on a CPU: :func:`attnperf.ci.confirm.paired_judge`, the paired
re-measurement ``attnperf ci bench`` uses) every time row is judged again, as in
``ci bench``: GOOD vs BAD first (asv's separate processes read identical code as a
change on a CPU, and a real step under asv's factor as none; the pairs decide), the
search then steps on paired ratios against GOOD (a commit is bad when its ratio lies
above the geometric midpoint of 1 and BAD's), and the named commit is judged against
its parent.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from ..io.asv_results import ResultsDB, Run
from . import ab

# Outcomes.
NO_REGRESSION, REGRESSION, ALL_NA, NO_RESULTS = ("no-regression", "regression", "all-n/a",
                                                "no-results")
BROKEN = "broken"  # a benchmark fails at BAD that passed at GOOD: a wrong result, not a slowdown

Fetch = Callable[[str], Run | None]
# confirm(before, after, rows) -> the rows judged again (a CPU's paired re-measurement)
Confirm = Callable[[str, str, Sequence[ab.Row]], list[ab.Row]]


@dataclasses.dataclass(frozen=True)
class Target:
    """One benchmark x parameter combination."""

    benchmark: str
    params: tuple[str, ...]

    def label(self) -> str:
        return f"{self.benchmark}({', '.join(self.params)})" if self.params else self.benchmark


def asv_name(benchmark: str, params: Sequence[str]) -> str:
    """The name asv's ``-b`` regex is matched against: ``name('tiled', 'b8_...')`` when
    parametrized (asv/benchmarks.py: the repr of each value)."""
    return f"{benchmark}({', '.join(repr(p) for p in params)})" if params else benchmark


def select(rows: Sequence[ab.Row], pattern: str | None) -> list[ab.Row]:
    """Rows asv's ``-b pattern`` selects (``re.search`` on :func:`asv_name`)."""
    if not pattern:
        return list(rows)
    rx = re.compile(pattern)
    return [r for r in rows if rx.search(asv_name(r.benchmark, r.params))]


def compare(db: ResultsDB, machine: str, before: Run | None, after: Run | None,
            factor: float, pattern: str | None,
            thresholds: ab.Thresholds | None = None) -> list[ab.Row]:
    """asv's A/B test (ab.compare) over the gated benchmarks matching ``pattern``."""
    return select(ab.compare(db, machine, before, after, factor, thresholds).rows, pattern)


def comparable(rows: Sequence[ab.Row]) -> list[ab.Row]:
    """Rows with a ratio (both sides measured)."""
    return [r for r in rows if r.ratio is not None]


def worst(rows: Sequence[ab.Row]) -> list[ab.Row]:
    """The ``worse`` rows, slowest first."""
    return sorted((r for r in rows if r.change == ab.WORSE), key=lambda r: -(r.ratio or 0.0))


class Bisection:
    """Binary search for the first commit that took a value from GOOD's to BAD's level.

    ``commits`` is ``git rev-list --reverse GOOD..BAD``: oldest first, GOOD
    excluded, BAD last.  Index -1 stands for GOOD.
    """

    def __init__(self, good: str, commits: Sequence[str], good_value: float, bad_value: float):
        if not commits:
            raise ValueError("empty commit range")
        if not (good_value > 0 and bad_value > good_value):
            raise ValueError(f"a slowdown needs 0 < good ({good_value}) < bad ({bad_value})")
        self.good = good
        self.commits = list(commits)
        self.midpoint: float = (good_value * bad_value) ** 0.5  # geometric: ratios, not differences
        self.lo, self.hi = -1, len(self.commits) - 1
        self.values: dict[str, float | None] = {good: good_value, self.commits[-1]: bad_value}
        self.skipped: list[str] = []

    def is_bad(self, value: float) -> bool:
        return value > self.midpoint

    def _candidates(self) -> list[int]:
        return [i for i in range(self.lo + 1, self.hi) if self.commits[i] not in self.skipped]

    def next(self) -> str | None:
        """The commit to measure next, or None when the search is over."""
        candidates = self._candidates()
        if not candidates:
            return None
        middle = (self.lo + self.hi) / 2
        return self.commits[min(candidates, key=lambda i: (abs(i - middle), i))]

    def record(self, commit: str, value: float | None) -> None:
        """The measured value of ``commit`` (None: n/a or failed -> skipped)."""
        i = self.commits.index(commit)
        if not self.lo < i < self.hi:
            raise ValueError(f"{commit} is outside the open range still searched")
        self.values[commit] = value
        if value is None:
            self.skipped.append(commit)
        elif self.is_bad(value):
            self.hi = i
        else:
            self.lo = i

    @property
    def culprit(self) -> str:
        return self.commits[self.hi]

    @property
    def parent(self) -> str:
        """The last commit known good (GOOD itself when the culprit is the first)."""
        return self.commits[self.lo] if self.lo >= 0 else self.good

    @property
    def suspects(self) -> list[str]:
        """The commits one of which is to blame: the culprit, plus skipped ones before it."""
        return self.commits[self.lo + 1:self.hi + 1]


@dataclasses.dataclass
class Outcome:
    kind: str
    good: str
    bad: str
    factor: float
    rows: list[ab.Row]  # GOOD vs BAD, selected benchmarks
    target: Target | None = None
    culprit: str | None = None
    parent: str | None = None
    suspects: list[str] = dataclasses.field(default_factory=list)
    step: ab.Row | None = None  # the target row, culprit vs its parent
    step_rows: list[ab.Row] = dataclasses.field(default_factory=list)  # worse rows at the step
    paired: bool = False  # flagged rows were judged again by the paired re-measurement
    measured: list[str] = dataclasses.field(default_factory=list)  # commits fetched, in order
    values: dict[str, float | None] = dataclasses.field(default_factory=dict)

    @property
    def confirmed(self) -> bool:
        return self.step is not None and self.step.change == ab.WORSE


def _value(run: Run | None, target: Target) -> float | None:
    if run is None:
        return None
    p = run.point(target.benchmark, *target.params)
    return p.value if p.ok else None


def bisect(db_of: Callable[[], ResultsDB], machine: str, good: str, bad: str,
           commits: Sequence[str], fetch: Fetch, factor: float,
           pattern: str | None = None, thresholds: ab.Thresholds | None = None,
           confirm: Confirm | None = None) -> Outcome:
    """The verdict for GOOD..BAD (see the module docstring).

    ``fetch(commit)`` returns that commit's asv results on ``machine`` (measuring
    them if needed) or None; ``db_of()`` the results database (units and
    benchmark metadata for the comparison rows).  ``commits`` is
    ``git rev-list --reverse GOOD..BAD``.  ``thresholds`` (calibrated, per
    benchmark) override ``factor`` where they have an entry.  ``confirm`` (see the
    module docstring) judges flagged rows again before a commit is named.
    """
    good_run, bad_run = fetch(good), fetch(bad)
    measured = [good, bad]
    if good_run is None or bad_run is None:
        return Outcome(NO_RESULTS, good, bad, factor, [], measured=measured)
    db = db_of()
    rows = compare(db, machine, good_run, bad_run, factor, pattern, thresholds)
    if any(r.change == ab.BROKE for r in rows):
        return Outcome(BROKEN, good, bad, factor, rows, measured=measured)
    paired = False
    if confirm is not None and comparable(rows):
        # As ci bench: every comparable row judged again (the time rows by the pairs), not
        # only those asv flagged -- a step under asv's factor is still a step.
        rows = _rejudged(rows, confirm(good, bad, comparable(rows)))
        paired = any(r.source == "paired" for r in rows)
    slower = worst(rows)
    if not slower:
        kind = NO_REGRESSION if comparable(rows) else ALL_NA
        return Outcome(kind, good, bad, factor, rows, measured=measured, paired=paired)
    top = slower[0]
    target = Target(top.benchmark, top.params)
    runs: dict[str, Run | None] = {good: good_run, bad: bad_run}
    if top.source == "paired" and confirm is not None and top.ratio is not None:
        # The search on paired ratios against GOOD (GOOD 1, BAD the pairs' ratio): asv's
        # separate processes would steer it by their own state on a CPU.
        search = Bisection(good, commits, 1.0, top.ratio)
        db_now = db_of()

        def value(commit: str) -> float | None:
            row = next((r for r in compare(db_now, machine, good_run, runs[commit], factor,
                                           pattern, thresholds)
                        if (r.benchmark, r.params) == (target.benchmark, target.params)), None)
            if row is None or row.ratio is None or confirm is None:
                return None
            again = confirm(good, commit, [row])
            return again[0].ratio if again and again[0].source == "paired" else None
    else:
        search = Bisection(good, commits, *_values(top))

        def value(commit: str) -> float | None:
            return _value(runs[commit], target)
    while True:
        commit = search.next()
        if commit is None:
            break
        runs[commit] = fetch(commit)
        measured.append(commit)
        search.record(commit, value(commit))
    culprit, parent = search.culprit, search.parent
    if parent not in runs:  # pragma: no cover - the search only ends next to a measured commit
        runs[parent] = fetch(parent)
    db = db_of()
    step_rows = compare(db, machine, runs[parent], runs[culprit], factor, pattern, thresholds)
    if confirm is not None:
        asked = [r for r in step_rows if r.change == ab.WORSE
                 or (r.benchmark, r.params) == (target.benchmark, target.params)]
        step_rows = _rejudged(step_rows, confirm(parent, culprit, asked) if asked else [])
    step = next((r for r in step_rows
                 if (r.benchmark, r.params) == (target.benchmark, target.params)), None)
    return Outcome(REGRESSION, good, bad, factor, rows, target=target, culprit=culprit,
                   parent=parent, suspects=search.suspects, step=step,
                   step_rows=worst(step_rows), measured=measured, values=dict(search.values),
                   paired=paired)


def _values(row: ab.Row) -> tuple[float, float]:
    """The before and after values of a row judged worse (such a row carries both)."""
    before, after = row.before.value, row.after.value
    if before is None or after is None:
        raise ValueError(f"{row.benchmark}: a row without values cannot steer the search")
    return before, after


def _rejudged(rows: Sequence[ab.Row], again: Sequence[ab.Row]) -> list[ab.Row]:
    """``rows`` with those judged again replaced (matched by benchmark and parameters)."""
    new = {(r.benchmark, r.params): r for r in again}
    return [new.get((r.benchmark, r.params), r) for r in rows]
