"""Roofline figures of one asv run, per kernel x problem (for the PR comment and the site).

asv records times; the regime, efficiency and achieved rates are derived here,
with one rule each:

* efficiency % = 100 / ``x_over_floor`` (``track_x_over_floor`` is measured
  time over the roofline floor time, so its inverse is the share of the binding
  ceiling reached); ``RooflineViews.track_efficiency_pct`` is used when recorded.
* TFLOP/s and GB/s = the problem's FLOPs / bytes (``attnperf.roofline``) over
  the median device time; the recorded views win when present.
* regime = ``RooflineViews.track_regime_code`` when recorded (the suite's own
  classification); otherwise :func:`attnperf.roofline.classify` against the
  machine's ceilings (``attnperf-ceilings.json``, else the datasheet peak of
  its GPU).  Without either, the regime is unknown and says so.
* accuracy (max / mean abs error against float64) and peak memory = the
  ``Accuracy`` and ``PeakMemory`` benchmarks' values, None where not recorded.
* correctness = the status of ``track_device_time``: the suite checks each
  kernel against a float64 reference before timing and raises on a wrong
  result, so a value means "correct", a failure means "wrong or raised".
* training passes (:func:`pass_rows`): per kernel x problem, the forward's
  figures (the cell above) beside ``TrainingPass``'s ``bwd`` and ``fwd+bwd``
  -- TFLOP/s from the pass's FLOPs (2.5x / 3.5x the forward's) over the median
  time, efficiency as above; a failure there means wrong gradients or raised.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UnknownNameError
from ..io.asv_results import FAILED, MISSING, OK, SKIPPED, Machine, Point, Run
from ..model import roofline
from ..model.catalog import resolve
from ..model.peaks import match_peak
from ..model.problem import Problem
from .gate import (
    LATENCY,
    MAX_ABS_ERROR,
    MEAN_ABS_ERROR,
    PASS_TIME,
    PASS_VIEW_EFFICIENCY,
    PASS_VIEW_TFLOPS,
    PASS_X_OVER_FLOOR,
    PEAK_MEMORY,
    TIME,
    VIEW_EFFICIENCY,
    VIEW_GB_S,
    VIEW_REGIME,
    VIEW_TFLOPS,
    X_OVER_FLOOR,
)

NO_GPU = (None, "", "none", "None")


def gpu_name(info: dict[str, Any]) -> str | None:
    for key in ("gpu", "gpu_name"):
        value = info.get(key)
        if value not in NO_GPU and isinstance(value, str):
            return value
    return None


def device_of(info: dict[str, Any]) -> str:
    return "cuda" if gpu_name(info) else "cpu"


def ceiling(machine: Machine, problem: Problem) -> roofline.Ceiling | None:
    """Measured ceilings of the machine first, the datasheet of its GPU second."""
    gpu = gpu_name(machine.info)
    peak = match_peak(gpu) if gpu else None
    return roofline.ceiling_for(problem, machine.ceilings, peak)


def ceilings_by_dtype(machine: Machine, dtypes: list[str]) -> dict[str, roofline.Ceiling]:
    out = {}
    for dtype in dtypes:
        c = ceiling(machine, Problem(batch=1, heads=1, seq_q=1, head_dim=1, dtype=dtype))
        if c is not None:
            out[dtype] = c
    return out


@dataclasses.dataclass
class Cell:
    """What the site and the comment say about one kernel x problem of one run."""

    kernel: str
    problem: str
    problem_obj: Problem | None
    status: str  # of track_device_time: ok / failed / skipped / missing
    time_s: float | None = None
    latency_s: float | None = None
    x_over_floor: float | None = None
    efficiency_pct: float | None = None
    tflops: float | None = None
    gb_s: float | None = None
    intensity: float | None = None
    regime: str | None = None
    regime_source: str = ""
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    peak_memory_bytes: float | None = None

    @property
    def peak_memory_mib(self) -> float | None:
        return None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20

    @property
    def correctness(self) -> str:
        return {OK: "ok", FAILED: "FAILED", SKIPPED: "n/a", MISSING: "not run"}[self.status]

    @property
    def problem_id(self) -> str | None:
        return self.problem_obj.id if self.problem_obj else None

    @property
    def dtype(self) -> str | None:
        return self.problem_obj.dtype if self.problem_obj else None


def _value(p: Point) -> float | None:
    return p.value if p.ok else None


def grid(run: Run) -> tuple[list[str], list[str]]:
    """Kernels and problems present in the run (asv parameter order)."""
    kernels: list[str] = []
    problems: list[str] = []
    for name in (TIME, X_OVER_FLOOR, LATENCY, VIEW_TFLOPS):
        b = run.benchmarks.get(name)
        if b is None:
            continue
        for key in b.points:
            if len(key) != 2:
                continue
            if key[0] not in kernels:
                kernels.append(key[0])
            if key[1] not in problems:
                problems.append(key[1])
    return kernels, problems


def cell(run: Run, machine: Machine, kernel: str, problem: str) -> Cell:
    try:
        prob = resolve(problem)  # a problem id (the suite's key) or an older preset name
    except UnknownNameError:
        prob = None
    t = run.point(TIME, kernel, problem)
    c = Cell(kernel=kernel, problem=problem, problem_obj=prob, status=t.status,
             time_s=_value(t), latency_s=_value(run.point(LATENCY, kernel, problem)),
             x_over_floor=_value(run.point(X_OVER_FLOOR, kernel, problem)),
             max_abs_error=_value(run.point(MAX_ABS_ERROR, kernel, problem)),
             mean_abs_error=_value(run.point(MEAN_ABS_ERROR, kernel, problem)),
             peak_memory_bytes=_value(run.point(PEAK_MEMORY, kernel, problem)))
    if prob is not None:
        c.intensity = roofline.arithmetic_intensity(prob)
    c.efficiency_pct = _value(run.point(VIEW_EFFICIENCY, kernel, problem))
    if c.efficiency_pct is None and c.x_over_floor:
        c.efficiency_pct = 100.0 / c.x_over_floor
    c.tflops = _value(run.point(VIEW_TFLOPS, kernel, problem))
    c.gb_s = _value(run.point(VIEW_GB_S, kernel, problem))
    if prob is not None and c.time_s:
        if c.tflops is None:
            c.tflops = roofline.flops(prob) / c.time_s / 1e12
        if c.gb_s is None:
            c.gb_s = roofline.bytes_moved(prob) / c.time_s / 1e9
    code = _value(run.point(VIEW_REGIME, kernel, problem))
    if code is not None and int(code) == code and 0 <= int(code) < len(roofline.REGIMES):
        c.regime, c.regime_source = roofline.REGIMES[int(code)], "recorded"
    elif prob is not None:
        ceil = ceiling(machine, prob)
        if ceil is not None:
            compute, memory = roofline.floors(prob, ceil)
            c.regime = roofline.classify(compute, memory, device_of(machine.info))
            c.regime_source = "from ceilings"
    return c


def cells(run: Run, machine: Machine) -> list[Cell]:
    kernels, problems = grid(run)
    return [cell(run, machine, k, p) for p in problems for k in kernels]


@dataclasses.dataclass
class PassFigures:
    """One pass of one kernel x problem: status, median time, TFLOP/s, efficiency."""

    status: str
    time_s: float | None = None
    tflops: float | None = None
    efficiency_pct: float | None = None


@dataclasses.dataclass
class PassRow:
    kernel: str
    problem: str
    problem_obj: Problem | None
    passes: dict[str, PassFigures]  # "fwd", "bwd", "fwd+bwd"


def _pass_figures(run: Run, kernel: str, problem: str, mode: str,
                  prob: Problem | None) -> PassFigures:
    t = run.point(PASS_TIME, kernel, problem, mode)
    f = PassFigures(t.status, time_s=_value(t),
                    tflops=_value(run.point(PASS_VIEW_TFLOPS, kernel, problem, mode)),
                    efficiency_pct=_value(run.point(PASS_VIEW_EFFICIENCY, kernel, problem, mode)))
    x = _value(run.point(PASS_X_OVER_FLOOR, kernel, problem, mode))
    if f.efficiency_pct is None and x:
        f.efficiency_pct = 100.0 / x
    if f.tflops is None and prob is not None and f.time_s:
        f.tflops = roofline.flops(prob.with_pass(mode)) / f.time_s / 1e12
    return f


def pass_rows(run: Run, machine: Machine) -> list[PassRow]:
    """Kernel x problem rows of the training-pass benchmarks, with the forward beside them
    (rows where no pass was measured are left out)."""
    b = run.benchmarks.get(PASS_TIME)
    if b is None:
        return []
    combos: list[tuple[str, str]] = []
    modes: list[str] = []
    for key in b.points:
        if len(key) == 3:
            combos += [] if key[:2] in combos else [key[:2]]
            modes += [] if key[2] in modes else [key[2]]
    rows = []
    for kernel, problem in combos:
        fwd = cell(run, machine, kernel, problem)
        passes = {"fwd": PassFigures(fwd.status, fwd.time_s, fwd.tflops, fwd.efficiency_pct)}
        for mode in modes:
            passes[mode] = _pass_figures(run, kernel, problem, mode, fwd.problem_obj)
        if any(p.status in (OK, FAILED) for m, p in passes.items() if m != "fwd"):
            rows.append(PassRow(kernel, problem, fwd.problem_obj, passes))
    return rows
