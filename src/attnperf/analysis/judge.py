"""Why a row was flagged, in one line: the same words in every verdict flow.

``attnperf ci bench`` (its summary and its output) and ``attnperf bisect`` (GOOD..BAD and
the named step) flag rows with :mod:`attnperf.analysis.ab`; each flagged row gets one line
here naming everything the verdict rested on -- the ratio, the interval or test and its
p-value, the threshold and where it came from, and whether the two commits were measured
paired (live workers, samples alternated: :mod:`attnperf.measure.paired`) or in asv's
separate processes, which on a CPU can disagree for identical code.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import ab
from .gate import metric_class, short_name

SOURCES = {"factor": "factor", "calibrated": "calibrated threshold",
           "metric": "the metric's factor", "paired": "paired factor"}
FLAGGED = (ab.WORSE, ab.BROKE)


def _name(r: ab.Row) -> str:
    return f"{short_name(r.benchmark)} {' '.join(r.params)}".strip()


def why(r: ab.Row) -> str:
    """'tiled/train TimeAttention.track_device_time: x2.00 > x1.05 (factor); p=3.2e-06
    (Mann–Whitney U, n=15/15); asv's separate runs, not paired'."""
    name = f"{r.kernel}/{r.problem} {short_name(r.benchmark)}" if r.params else _name(r)
    if r.change == ab.BROKE:
        return f"{name}: fails at head, passed at base (a wrong result or an error)"
    ratio = f"x{r.ratio:.3f}" if r.ratio is not None else "no ratio"
    rel = ">" if r.change == ab.WORSE else "<" if r.change == ab.BETTER else "vs"
    test = r.significance.text or "no statistics"
    how = ("paired re-measurement (live workers, samples alternated)" if r.source == "paired"
           else "deterministic metric" if metric_class(r.benchmark) is not None
           else "asv's separate runs, not paired")
    return (f"{name}: {ratio} {rel} x{r.factor:g} ({SOURCES.get(r.source, r.source)}); "
            f"{test}; {how}")


def flagged(rows: Iterable[ab.Row]) -> list[ab.Row]:
    """The rows a verdict flags: broken first, then slower, slowest first."""
    rows = [r for r in rows if r.change in FLAGGED]
    return sorted(rows, key=lambda r: (r.change != ab.BROKE, -(r.ratio or 0.0)))


def why_lines(rows: Iterable[ab.Row]) -> list[str]:
    """One :func:`why` line per flagged row."""
    return [why(r) for r in flagged(rows)]
