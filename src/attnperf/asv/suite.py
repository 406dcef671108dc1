"""What the asv suite measures, as library code (benchmarks/ stays thin).

The grid is kernel x problem.  :func:`measure_grid` measures every selected
combination once per commit (asv ``setup_cache``) through the same
:func:`attnperf.measure.measure` that ``attnperf run`` uses, and returns plain
data: per combination a status, the correctness figures, raw device-time and
latency samples (seconds) and the roofline figures.  asv then records those
samples as its own samples, so ``asv compare``/``continuous`` run their
Mann-Whitney test on GPU-true times instead of on an unsynchronised host timer.

Selection (environment variables, for quick loops and tests; never recorded):
``ATTNPERF_ASV_KERNELS`` / ``ATTNPERF_ASV_PROBLEMS`` -- comma lists limiting
the grid; ``ATTNPERF_ASV_DEVICE`` -- ``cpu`` or ``cuda`` (default: cuda if present).

The cache entry (:func:`entry`) is a contract between two commits: HEAD's
``benchmarks/`` reads the entries that each benchmarked commit's attnperf
wrote, so its key names never change (add keys, never rename).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from ..errors import UnknownNameError
from ..model import roofline
from ..model.catalog import PRESETS, resolve
from ..model.problem import Problem
from ..measure.device import resolve_device
from ..measure.session import Session
from ..measure.timing import Budget

GRID_KERNELS = ["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "sdpa_math", "naive", "tiled"]
# Problems by their stable id (the asv history key; a preset's shape may be
# edited, an id never changes meaning).  Presets: seed, decode, gqa, causal,
# mid, train, cpu_seed, cpu_decode, cpu_causal, cpu_gqa.
GRID_PROBLEMS = [PRESETS[name].id for name in (
    "seed", "decode", "gqa", "causal", "mid", "train",
    "cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa")]

# What a 2-core CPU runs in the suite: float32 (CPU half-precision kernels are
# slow and rarely used: fp16 matmul ran at ~1 GFLOP/s here), a few hundred
# MFLOP per call at most.
CPU_MAX_FLOPS = 2e9
CPU_MAX_BYTES = 512 << 20

# The CPU suite runs PyTorch single-threaded: on a small shared CPU, OpenMP
# barriers across busy cores turn a 1 ms kernel into 10 ms at random, which
# drowns real changes in noise.  The thread count is in the fingerprint.
CPU_THREADS = 1

# Samples per timing: >= 7 a side is what asv's Mann-Whitney test needs to reach
# p < 0.002; 15 leaves margin.  Budget caps the time per combination.
ASV_BUDGET = Budget(min_samples=15, max_samples=40, budget_s=0.4, warmup_s=0.05, stable_ratio=0.0)
REGIME_CODES = {name: i for i, name in enumerate(roofline.REGIMES)}


def key(kernel: str, problem: str) -> str:
    return f"{kernel}|{problem}"


def _env_list(name: str) -> Optional[List[str]]:
    raw = os.environ.get(name, "").strip()
    return [x.strip() for x in raw.split(",") if x.strip()] or None


class SelectionError(ValueError):
    """ATTNPERF_ASV_KERNELS / ATTNPERF_ASV_PROBLEMS name something the grid does not hold.

    Raised in asv's setup_cache; ``asv run -e`` (``--show-stderr``) prints it --
    without it asv says only "setup_cache failed"."""


def _grid_problem_names() -> str:
    names = [n for n, p in PRESETS.items() if p.id in GRID_PROBLEMS]
    return ", ".join(names)


def selection() -> Tuple[List[str], List[str]]:
    """Kernels and problem ids to measure (env lists take preset names or ids).

    Every name must be in the grid: anything else could never show up in asv's
    table (its parameters are the static grid), so a typo would read as n/a.
    """
    kernels = _env_list("ATTNPERF_ASV_KERNELS") or GRID_KERNELS
    unknown = [k for k in kernels if k not in GRID_KERNELS]
    if unknown:
        raise SelectionError(f"ATTNPERF_ASV_KERNELS: unknown kernel(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(GRID_KERNELS)}")
    problems = []
    for name in _env_list("ATTNPERF_ASV_PROBLEMS") or GRID_PROBLEMS:
        try:
            pid = resolve(name).id
        except UnknownNameError:
            pid = None
        if pid not in GRID_PROBLEMS:
            raise SelectionError(f"ATTNPERF_ASV_PROBLEMS: {name!r} is not a problem of the asv grid; "
                                 f"allowed: {_grid_problem_names()} (or their ids)")
        problems.append(pid)
    return kernels, problems


def fits_device(problem: Problem, device_name: str) -> Tuple[bool, str]:
    if device_name != "cpu":
        return True, ""
    if problem.dtype != "float32":
        return False, (f"{problem.id}: the CPU suite runs float32 problems only "
                       "(cpu_* presets); half precision runs on GPUs")
    f, b = roofline.flops(problem), roofline.bytes_moved(problem)
    if f > CPU_MAX_FLOPS or b > CPU_MAX_BYTES:
        return False, (f"{problem.id} is too large for the CPU suite "
                       f"({f / 1e9:.1f} GFLOP > {CPU_MAX_FLOPS / 1e9:.0f} or "
                       f"{b / 2**20:.0f} MiB > {CPU_MAX_BYTES >> 20}); it runs on GPUs")
    return True, ""


def entry(m) -> dict:
    e = {"status": m.status, "reason": m.reason, "device": m.device, "dispatch": m.dispatch,
         "correctness": m.correctness.to_dict() if m.correctness else None,
         "device_time_s": list(m.device_time.samples_s) if m.device_time else None,
         "device_time_method": m.device_time.method if m.device_time else None,
         "latency_s": list(m.latency.samples_s) if m.latency else None}
    if m.roofline is not None:
        r = m.roofline
        e.update(floor_s=r.floor_s, tflops=r.achieved_tflops, gb_s=r.achieved_gb_s,
                 efficiency_pct=r.efficiency_pct, x_over_floor=r.x_over_floor, regime=r.regime,
                 arithmetic_intensity=r.arithmetic_intensity, ceiling_source=r.ceiling_source)
    return e


def measure_grid(kernels: Optional[List[str]] = None, problems: Optional[List[str]] = None,
                 device_name: Optional[str] = None, budget: Budget = ASV_BUDGET) -> Dict[str, dict]:
    """Measure every (kernel, problem) once; failures become entries, never exceptions."""
    sel_k, sel_p = selection()
    kernels = kernels or sel_k
    problem_objs = [resolve(p) for p in (problems or sel_p)]
    device = resolve_device(device_name or os.environ.get("ATTNPERF_ASV_DEVICE", "auto"))

    def unfit(problem: Problem) -> Optional[str]:
        ok, why = fits_device(problem, device)
        return None if ok else why

    if all(unfit(p) for p in problem_objs):
        # Every benchmark would be n/a and asv would exit 0 without a word.
        raise SelectionError(
            f"no selected problem runs on {device}: {unfit(problem_objs[0])}"
            + (f"; CPU problems: {', '.join(n for n in PRESETS if n.startswith('cpu_'))}"
               if device == "cpu" else ""))
    session = Session(device, threads=CPU_THREADS)
    out: Dict[str, dict] = {"__meta__": {"device": session.device, "environment": session.environment,
                                         "ceilings": session.ceilings}}

    jobs = [(k, p) for p in problem_objs for k in kernels]
    for m in session.measure_grid(jobs, budget=budget, latency=(session.device == "cuda"), skip=unfit):
        out[key(m.kernel, m.problem.id)] = entry(m)
    return out


class Skip(NotImplementedError):
    """asv shows the combination as n/a with this reason."""


def entry_for(cache: Dict[str, dict], kernel: str, problem: str) -> dict:
    """The setup-time check: n/a for what cannot run, an assertion for wrong results."""
    e = cache.get(key(kernel, problem))
    if e is None:
        raise Skip(f"{kernel}/{problem} not selected (ATTNPERF_ASV_KERNELS/PROBLEMS)")
    status = e["status"]
    if status in ("unavailable", "skipped"):
        raise Skip(f"{kernel}/{problem}: {e['reason']}")
    if status == "failed":
        c = e["correctness"] or {}
        raise AssertionError(
            f"{kernel}/{problem} is WRONG: rel_error={c.get('rel_error')} "
            f"(tolerance {c.get('tolerance')}), max_abs_error={c.get('max_abs_error')}, "
            f"nonfinite={c.get('nonfinite')}")
    if status != "ok":
        raise RuntimeError(f"{kernel}/{problem} raised: {e['reason']}")
    return e


def samples(values: List[float]) -> dict:
    """asv's sample format for a track_ benchmark (parsed by asv as timing samples)."""
    return {"samples": list(values), "number": 1}
