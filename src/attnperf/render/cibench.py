"""Markdown of ``attnperf ci bench`` beyond the PR comment's section
(:mod:`attnperf.render.prcomment`): the CPU jobs' paired re-measurement table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from . import markdown as md


class PairedFigures(Protocol):
    """What :func:`paired_section` reads of one paired re-measurement."""

    @property
    def base_s(self) -> float: ...
    @property
    def head_s(self) -> float: ...
    @property
    def ratio(self) -> float: ...
    @property
    def p_slower(self) -> float: ...
    @property
    def runs(self) -> tuple[float, ...]: ...


def paired_section(paired: Mapping[tuple[str, str], PairedFigures], factor: float) -> str:
    """The paired figures per (kernel, problem id): base and head medians, the ratio
    (the median of the runs' median pair ratios), each run's, and the sign test's p
    (objects with ``base_s``, ``head_s``, ``ratio``, ``runs``, ``p_slower``, as
    :class:`attnperf.measure.paired.Paired` has)."""
    lines = ["", f"#### CPU times re-measured paired (both commits alternated on one core; "
                 f"slower past x{factor:g} with sign-test p < 0.01 is a regression)", "",
             "Times: the measuring thread's CPU time per call, median of the samples. "
             "Each run is a fresh pair of worker processes; head/base is the median of "
             "the runs' median pair ratios.", "",
             "| kernel | problem | base ms | head ms | head/base | runs | p (slower) |",
             "|---|---|---|---|---|---|---|"]
    for (k, p), r in sorted(paired.items()):
        runs = " ".join(f"{x:.3f}" for x in r.runs) or "—"
        lines.append(
            f"| {md.text(k)} | {md.text(p)} | {r.base_s * 1e3:.3f} | {r.head_s * 1e3:.3f} | "
            f"{r.ratio:.3f} | {runs} | {r.p_slower:.1e} |"
        )
    return "\n".join(lines) + "\n"


def why_section(lines: Sequence[str]) -> str:
    """One bullet per flagged row (:func:`attnperf.analysis.judge.why_lines`): what the
    verdict rested on -- ratio, interval or test, threshold, paired or not."""
    if not lines:
        return ""
    return "\n".join(["", "#### Why flagged", "", *(f"- {md.text(line)}" for line in lines)]) + "\n"
