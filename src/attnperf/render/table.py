"""``attnperf run``'s result table (tabulate), with its notes.

One row per measured (kernel, problem) -- ok, failed or error; what could not
run here (unavailable, skipped) is summarised below the table, one line per
kernel and reason (every config with ``verbose``).  Columns that are empty for
every row (latency on a CPU, backend for kernels that do not report one) are
left out.  ``problem`` is the problem id (training passes end in ``_bwd`` /
``_fwdbwd``; their TF/s count 2.5x / 3.5x the forward FLOPs, and ``rel_err``
is the worst of the output's and dQ, dK, dV's).  ``peak MiB``: device memory one
warm call allocated at its peak beyond its inputs (a GPU; the column is left out
on a CPU, where it is unavailable).  ``verbose`` adds the output's absolute
errors against float64 (``max_abs``, ``mean_abs``) beside ``rel_err``.  Flags in
the ``note`` column: ``unstable`` (IQR above 10 % of the median), ``ceiling
beaten`` (faster than the measured roofs allow; efficiency shown as ``>100``),
``in cache`` (above the DRAM roof because the data fit in the last-level cache).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from tabulate import tabulate

from ..model.records import Measurement
from ..model.samples import UNSTABLE_IQR_RATIO
from .escape import terminal

MEASURED = ("ok", "failed", "error")


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _sig(v: float | None, digits: int = 4) -> str:
    """``digits`` significant digits in fixed notation: 0.2145, 11.54, 180.5, 1805."""
    if v is None:
        return "-"
    if v == 0 or not math.isfinite(v):
        return format(v, "g")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def _row(m: Measurement, verbose: bool = False) -> list[str]:
    st = m.device_time.stats() if m.device_time else None
    lat = m.latency.stats() if m.latency else None
    rf = m.roofline
    notes = []
    if st and st["unstable"]:
        notes.append("unstable")
    if rf is not None and rf.ceiling_beaten:
        notes.append("ceiling beaten")
    elif rf is not None and rf.efficiency_pct > 100 and rf.cache_resident:
        notes.append("in cache")
    eff = None if rf is None else (">100" if rf.ceiling_beaten else _num(rf.efficiency_pct, ".1f"))
    return [
        m.kernel, m.problem.id, m.status,
        _sig(st["median_ms"] if st else None),
        _num(100 * st["iqr_over_median"] if st else None, ".1f"),
        _sig(lat["median_ms"] if lat else None),
        _sig(rf.achieved_tflops if rf else None, 3), _sig(rf.achieved_gb_s if rf else None, 3),
        rf.regime if rf else "-", eff or "-", _num(rf.x_over_floor if rf else None, ".2f"),
        _num(_worst_rel(m), ".1e"),
    ] + ([_num(m.correctness.max_abs_error if m.correctness else None, ".1e"),
          _num(m.correctness.mean_abs_error if m.correctness else None, ".1e")]
         if verbose else []) + [
        _num(m.peak_memory.mib if m.peak_memory else None, ".1f"),
        m.dispatch or "-", ", ".join(notes) or "-",
    ]


def _worst_rel(m: Measurement) -> float | None:
    """The output's relative error, or in training passes the worst of it and dQ, dK, dV's."""
    figures = [c.rel_error for c in [m.correctness] + list((m.gradients or {}).values()) if c]
    if any(math.isnan(x) for x in figures):
        return math.nan
    return max(figures) if figures else None


HEAD = ["kernel", "problem", "status", "time ms", "iqr%", "latency ms", "TF/s", "GB/s",
        "regime", "eff%", "x_floor", "rel_err", "peak MiB", "backend", "note"]
VERBOSE_ERRORS = ["max_abs", "mean_abs"]  # after rel_err with verbose
OPTIONAL = ("latency ms", "peak MiB", "backend", "note")  # left out when empty in every row


def render_table(measurements: Sequence[Measurement], verbose: bool = False) -> str:
    rows = [_row(m, verbose) for m in measurements if m.status in MEASURED]
    at = HEAD.index("rel_err") + 1
    head = HEAD[:at] + (VERBOSE_ERRORS if verbose else []) + HEAD[at:]
    keep = [i for i, name in enumerate(head)
            if name not in OPTIONAL or any(r[i] != "-" for r in rows)]
    lines = []
    if rows:
        lines.append(tabulate([[r[i] for i in keep] for r in rows], headers=[head[i] for i in keep],
                              tablefmt="simple", disable_numparse=True))
    else:
        lines.append("(no config was measured)")
    lines += _not_measured(measurements, verbose)
    lines += _footnotes(measurements)
    return "\n".join(lines)


def _not_measured(measurements: Sequence[Measurement], verbose: bool) -> list[str]:
    failed = [m for m in measurements if m.status in ("failed", "error")]
    absent = [m for m in measurements if m.status not in MEASURED]
    out = []
    if failed:
        out += ["", "failed:"] + [
            f"  {m.kernel}/{m.problem.id}: {m.status}: {terminal(m.reason)}" for m in failed
        ]
    if not absent:
        return out
    out += ["", "not measured here:"]
    if verbose:
        return out + [
            f"  {m.kernel}/{m.problem.id}: {m.status}: {terminal(m.reason)}" for m in absent
        ]
    # One line per kernel and status; the first reason stands for the rest (--verbose: all).
    groups: OrderedDict[tuple[str, str], list[Measurement]] = OrderedDict()
    for m in absent:
        groups.setdefault((m.kernel, m.status), []).append(m)
    for (kernel, status), ms in groups.items():
        what = ms[0].problem.id if len(ms) == 1 else f"{len(ms)} problems"
        out.append(f"  {kernel} ({what}): {status}: {terminal(ms[0].reason)}")
    return out


def _footnotes(measurements: Sequence[Measurement]) -> list[str]:
    out = []
    unstable = [m for m in measurements if m.device_time and m.device_time.stats()["unstable"]]
    if unstable:
        out.append(f"unstable: IQR above {100 * UNSTABLE_IQR_RATIO:.0f} % of the median for "
                   f"{len(unstable)} config(s); the machine is busy or throttling "
                   "(re-run, or fewer --threads on a shared CPU)")
    beaten = [m for m in measurements if m.roofline is not None and m.roofline.ceiling_beaten]
    if beaten:
        first = beaten[0]
        note = first.roofline.ceiling_note if first.roofline is not None else ""
        out.append(
            f"ceiling beaten: {len(beaten)} config(s); efficiency shown as >100 is not "
            f"meaningful: {first.kernel}/{first.problem.id} {note}"
        )
    warned = [m for m in measurements if m.warnings]
    if warned:
        count = sum(len(m.warnings) for m in warned)
        out.append(f"warnings: {count} from {len(warned)} config(s), recorded in the report "
                   "(--output; --verbose prints them)")
    unsteady = [m for m in measurements if m.device_time and m.device_time.unsteady]
    if unsteady:
        out.append(f"unsteady: {len(unsteady)} config(s) kept running under power or thermal "
                   "slowdown after the retake budget (compare them with care):")
        out += [f"  {m.kernel}/{m.problem.id}: {m.device_time.unsteady_reason}"
                for m in unsteady if m.device_time]  # all of them (filtered above)
    device = measurements[0].device if measurements else "cpu"
    out.append("time = device time per call (CUDA graph replays, each sample after an idle gap "
               "and warm replays)" if device == "cuda" else _cpu_time_line(measurements))
    if device == "cuda":
        out.append(_clock_line(measurements))
        out.append("latency = one isolated call (sync, L2 flushed, CUDA events)")
    return [""] + out


def _cpu_time_line(measurements: Sequence[Measurement]) -> str:
    """What a CPU time is: the measuring thread's CPU time (1 PyTorch thread), else wall time."""
    if any(m.device_time and m.device_time.cpu_clock == "thread" for m in measurements):
        return ("time = CPU time of the measuring thread per call (1 PyTorch thread; time spent "
                "waiting for a core is not counted; wall time is in the report)")
    return "time = wall time per call on the CPU"


def _clock_line(measurements: Sequence[Measurement]) -> str:
    """The SM clocks seen during the device-time samples (NVML), or why not."""
    mhz = [c for m in measurements if m.device_time
           for c in (m.device_time.sm_clocks_mhz() or []) if c is not None]
    if not mhz:
        return "clocks: unavailable (NVML not readable; pip install nvidia-ml-py)"
    retaken = sum(m.device_time.retaken for m in measurements if m.device_time)
    return (f"clocks: SM {min(mhz)}-{max(mhz)} MHz during the samples (NVML); "
            f"{retaken} sample(s) retaken for power or thermal slowdown")
