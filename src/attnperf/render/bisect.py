"""Text of ``attnperf bisect``'s verdict and ``attnperf calibrate``'s noise table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..analysis import ab
from ..analysis.bisect import ALL_NA, BROKEN, NO_REGRESSION, REGRESSION, Outcome, asv_name
from ..analysis.gate import short_name
from ..analysis.judge import why_lines
from ..analysis.noise import detectable_at
from ..io.thresholds import Entry


def _name(r: ab.Row) -> str:
    return asv_name(short_name(r.benchmark), r.params)


def ratio_lines(rows: Sequence[ab.Row], limit: int = 20) -> list[str]:
    """One line per comparable row: ratio, verdict, factor, the test's result, the benchmark."""
    shown = sorted((r for r in rows if r.ratio is not None), key=lambda r: -(r.ratio or 0))
    out = [f"  {r.ratio:7.3f}x  {r.change:<6}  x{r.factor:<5.3g} {r.significance.text or '-':<38} "
           f"{_name(r)}" for r in shown[:limit]]
    if len(shown) > limit:
        out.append(f"  ... and {len(shown) - limit} more")
    na = [r for r in rows if r.ratio is None]
    if na:
        out.append(f"  ({len(na)} combination(s) n/a or failed at GOOD or BAD)")
    return out


def outcome(o: Outcome, subject: Callable[[str], str]) -> str:
    """The verdict, for stdout."""
    g, b = o.good[:8], o.bad[:8]
    lines: list[str] = []
    if o.kind == NO_REGRESSION:
        lines.append(f"no significant regression between {g} and {b} "
                     + ("(every time row re-measured paired: a sign test on pairs alternated "
                        "between the two commits; the other rows by asv's test)" if o.paired else
                        f"(asv's test: Mann-Whitney U p < {ab.P_THRESHOLD} and ratio > factor)"))
        lines.append("  ratio     change  factor test                                   benchmark")
        lines += ratio_lines(o.rows)
    elif o.kind == BROKEN:
        broke = [r for r in o.rows if r.change == ab.BROKE]
        lines.append(f"broken: {len(broke)} benchmark(s) pass at {g} and fail at {b} (a wrong "
                     "result or an error; asv's log says which): no timing verdict")
        lines += [f"  {line}" for line in why_lines(broke[:20])]
        if len(broke) > 20:
            lines.append(f"  ... and {len(broke) - 20} more")
    elif o.kind == ALL_NA:
        lines.append(f"every selected benchmark is n/a at {g} and {b} on this machine "
                     "(not measurable here, e.g. a GPU-only problem on a CPU): nothing to bisect")
    elif o.kind == REGRESSION:
        step = o.step
        assert o.culprit is not None and o.target is not None
        lines.append(f"regression: {o.culprit} {subject(o.culprit)}")
        lines.append(f"  benchmark: {asv_name(short_name(o.target.benchmark), o.target.params)}")
        if step is not None and step.ratio is not None:
            lines.append(f"  ratio: {step.ratio:.3f}x against {o.parent[:8] if o.parent else '?'}"
                         f" ({'its parent' if len(o.suspects) == 1 else 'the last good commit'})")
            lines.append(f"  test: {step.significance.text or 'no statistics'}; factor "
                         f"x{step.factor:g} -> {step.change}")
        top = next((r for r in o.rows if o.target and (r.benchmark, r.params) ==
                    (o.target.benchmark, o.target.params)), None)
        if top is not None and top.ratio is not None:
            lines.append(f"  {g}..{b}: {top.ratio:.3f}x ({top.significance.text})")
        if not o.confirmed:
            lines.append("  NOT CONFIRMED: this step alone is not a significant slowdown; the "
                         f"regression {g}..{b} may have come in several smaller steps")
        if len(o.suspects) > 1:
            lines.append(f"  {len(o.suspects) - 1} commit(s) before it could not be measured; "
                         "the regression is one of: " + " ".join(c[:8] for c in o.suspects))
        others = [r for r in o.step_rows if (r.benchmark, r.params) !=
                  (o.target.benchmark, o.target.params)]
        if others:
            lines.append(f"  also slower at this commit ({len(others)}):")
            lines += ratio_lines(others, limit=10)
        flagged = why_lines(o.step_rows)
        if flagged:
            lines.append(f"  why flagged at {o.culprit[:8]} against {(o.parent or '?')[:8]}:")
            lines += [f"    {line}" for line in flagged]
    return "\n".join(lines) + "\n"


def noise_table(entries: Sequence[Entry], factor: float) -> str:
    """Per benchmark: spread of the A/A medians, the threshold, what a gate can detect."""
    lines = [f"  {'spread':>7} {'threshold':>9} {'detect':>7} {'@x' + format(factor, 'g'):>8}  "
             "runs  benchmark",
             ]
    for e in entries:
        at = detectable_at(factor, e.spread)
        warn = "  (A/A can be flagged at this factor)" if e.spread >= factor else ""
        lines.append(f"  {e.spread:7.3f} {e.threshold:9.3f} {e.detectable:7.3f} {at:8.3f}  "
                     f"{len(e.medians):4d}  {asv_name(short_name(e.benchmark), e.params)}{warn}")
    return "\n".join(lines) + "\n"
