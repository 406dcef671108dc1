"""Know your noise: per-benchmark spread of A/A runs and the thresholds derived from it.

``attnperf calibrate`` measures the same commit N times on one machine (N asv
result sets, each taken exactly as the gate takes one side of a comparison:
the same rounds).  For every gated benchmark x parameter combination:

* ``spread`` = max/min of the N medians: the largest A/A ratio seen;
* ``threshold`` = max(``floor``, spread ** ``headroom``): the factor this
  benchmark is judged with.  With headroom 2 an A/A pair would have to drift
  twice as far (in log ratio) as the worst pair seen during calibration to be
  flagged; for normal noise and 5 runs that is ~3.3 standard deviations of a
  pair's log ratio.  ``floor`` keeps a perfectly steady benchmark from being
  judged at 1.00;
* ``detectable`` = threshold x spread: the smallest true slowdown that is
  flagged even when noise pulls the two sides a full spread together
  (asv's Mann-Whitney test must also find the change significant; with 15+
  samples a side it resolves far smaller shifts than these factors).
* at a single suite factor F the same reasoning gives ``F x spread``, and
  spread >= F means A/A runs at F can be flagged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..io.asv_results import Run
from ..io.thresholds import Entry
from .gate import is_view, metric_class

DEFAULT_FLOOR = 1.01
DEFAULT_HEADROOM = 2.0


@dataclasses.dataclass(frozen=True)
class Rule:
    floor: float = DEFAULT_FLOOR
    headroom: float = DEFAULT_HEADROOM

    def threshold(self, spread: float) -> float:
        scaled: float = spread ** self.headroom
        return max(self.floor, scaled)


def detectable_at(factor: float, spread: float) -> float:
    """The smallest slowdown a gate at ``factor`` flags despite ``spread`` of noise."""
    return factor * spread


def _timed(name: str) -> bool:
    """A gated time: not a view, and not a deterministic metric (Accuracy,
    PeakMemory) -- those are judged at fixed factors, their A/A spread is 1.00."""
    return not is_view(name) and metric_class(name) is None


def medians(runs: Sequence[Run]) -> dict[tuple[str, tuple[str, ...]], list[float]]:
    """Every gated time (benchmark, params) measured in the runs -> its medians, run order."""
    out: dict[tuple[str, tuple[str, ...]], list[float]] = {}
    for run in runs:
        for name, bench in run.benchmarks.items():
            if not _timed(name):
                continue
            for params, point in bench.points.items():
                if point.ok and point.value is not None and point.value > 0:
                    out.setdefault((name, params), []).append(point.value)
    return out


Key = tuple[str, tuple[str, ...]]


def entries(runs: Sequence[Run], rule: Rule = Rule(),
            pooled: Sequence[dict[Key, Sequence[float]]] = ()) -> list[Entry]:
    """One entry per combination measured in at least two sets (sorted by name, params).

    ``pooled``: medians of earlier A/A sets of the same code on the same machine
    (e.g. the ``medians`` of an earlier thresholds file), added to those of ``runs``.
    """
    values_of = medians(runs)
    for extra in pooled:
        for key, values in extra.items():
            if _timed(key[0]):
                values_of.setdefault(key, []).extend(v for v in values if v > 0)
    found = []
    for (name, params), values in sorted(values_of.items()):
        if len(values) < 2:
            continue
        spread = max(values) / min(values)
        threshold = rule.threshold(spread)
        found.append(Entry(name, params, tuple(values), spread, threshold, threshold * spread))
    return found
