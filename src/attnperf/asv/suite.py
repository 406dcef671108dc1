"""What the asv suite measures, as library code (benchmarks/ stays thin).

The grid is kernel x problem.  :func:`measure_grid` measures every selected
combination once per commit (asv ``setup_cache``) through the same
:func:`attnperf.measure.measure` that ``attnperf run`` uses, and returns plain
data: per combination a status, the correctness figures, raw device-time and
latency samples (seconds) and the roofline figures.  asv then records those
samples as its own samples, so ``asv compare``/``continuous`` run their
Mann-Whitney test on GPU-true times instead of on an unsynchronised host timer.

The grid is the tracked repository's ``[tool.attnperf]`` (kernels + baselines,
problems; :func:`grid`), else attnperf's default (:data:`GRID_KERNELS` x
:data:`GRID_PROBLEMS`).  Selection (environment variables, for quick loops and
tests; never recorded): ``ATTNPERF_ASV_KERNELS`` / ``ATTNPERF_ASV_PROBLEMS`` --
comma lists limiting the grid; ``ATTNPERF_ASV_DEVICE`` -- ``cpu`` or ``cuda``
(default: cuda if present); ``ATTNPERF_ASV_SHARD`` -- ``K/N``: shard K's combinations only.

Training passes are a second grid, kernel x problem x pass (:func:`pass_grid`:
:data:`GRID_PASS_PROBLEMS` x :data:`GRID_PASSES`, or the repository's problems):
each measured as the problem ``p.with_pass(mode)`` (cache key
:func:`pass_key`), gradients checked before timing.  ``ATTNPERF_ASV_PASSES``
(a comma list of ``fwd``, ``bwd``, ``fwd+bwd``) limits which passes run; the
forward grid always runs, ``ATTNPERF_ASV_PASSES=fwd`` runs it alone, and a
selected ``ATTNPERF_ASV_PROBLEMS`` limits the training grid as well.

The cache entry (:func:`entry`) is a contract between two commits: HEAD's ``benchmarks/`` reads the
entries that each benchmarked commit's attnperf wrote, so its key names never change (add keys,
never rename).  GPU entries also carry the power protocol (``protocol``, ``gap_s``,
``warm_replays``, ``replays_per_sample``, ``settle_cycles``, ``captures``, ``calls_per_sample``),
the clocks (``clock_source``, ``sm_clock_mhz`` per sample, ``sm_clock_median_mhz``,
``clock_events``, ``slowdown_samples``, ``slowdown_reasons``, ``slowdown_bits``: "unavailable"
without NVML), ``retaken``, ``unsteady``/``unsteady_reason``, and ``sustained_time_s``
(back-to-back replays, a view).  CPU entries say what ``device_time_s`` is: ``cpu_clock`` "thread"
(the measuring thread's CPU time per call, :func:`attnperf.measure.timing.time_cpu_thread`), with
``wall_time_s`` and ``normalised_time_s`` (thread time at the reference speed; recorded, not
gated), ``cpu_reference_s`` and ``calls_per_sample``; an entry without ``cpu_clock`` holds wall
time (commits before it, or several threads).  Accuracy: the error figures of the checked output
against float64 are ``correctness``'s ``max_abs_error`` / ``mean_abs_error`` (in every entry since
the first suite).  Peak memory: ``peak_memory_bytes`` (what one warm call allocated at its peak
beyond what was allocated before it; None where unavailable, e.g. a CPU, with ``peak_memory_note``
saying why).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..errors import BenchmarkSkipped as Skip  # asv shows the combination as n/a
from ..errors import PluginError, SelectionError, UnknownNameError
from ..io import project_config
from ..kernels import registry
from ..measure.device import resolve_device
from ..measure.session import Session
from ..measure.timing import Budget
from ..model import roofline
from ..model.catalog import PRESETS, pass_id, resolve
from ..model.config import ProjectConfig
from ..model.problem import PASSES, Problem
from ..model.records import Measurement
from ..model.shard import Shard
from .devices import CPU_MAX_BYTES, CPU_MAX_FLOPS, asv_device, device_problems, fits_device  # noqa: F401 - suite's names

GRID_KERNELS = ["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "sdpa_math", "naive", "tiled",
                "triton_flash"]
# Problems by their stable id (the asv history key; a preset's shape may be
# edited, an id never changes meaning).  Presets: seed, decode, gqa, causal,
# mid, train, cpu_seed, cpu_decode, cpu_causal, cpu_gqa.
GRID_PROBLEMS = [PRESETS[name].id for name in (
    "seed", "decode", "gqa", "causal", "mid", "train",
    "cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa")]

# The training-pass grid (TrainingPass: kernel x problem x pass).  GPU: a causal, a
# GQA causal and the large training problem; CPU: two small ones (causal, GQA), so
# CI's asv runs stay cheap (a 2-core CPU times ~10 more combinations).
GRID_PASSES = ["bwd", "fwd+bwd"]
GRID_PASS_PROBLEMS = [PRESETS[name].id
                      for name in ("causal", "gqa", "train", "cpu_causal", "cpu_gqa")]

CPU_PROBLEM_IDS = frozenset(p.id for name, p in PRESETS.items() if name.startswith("cpu_"))

# The CPU suite runs PyTorch single-threaded: on a small shared CPU, OpenMP
# barriers across busy cores turn a 1 ms kernel into 10 ms at random, which
# drowns real changes in noise.  The thread count is in the fingerprint.
CPU_THREADS = 1

# Samples per timing: >= 7 a side is what asv's Mann-Whitney test needs to reach
# p < 0.002; 15 leaves margin.  Budget caps the time per combination.
# settle_s=0: the suite's verdicts were verified (H100 A/A, A/B) without the settling
# cycles that `attnperf run` spends; its 20-40 samples a commit outvote a start-up transient.
ASV_BUDGET = Budget(min_samples=15, max_samples=40, budget_s=0.4, warmup_s=0.05, stable_ratio=0.0,
                    settle_s=0.0)
# On a GPU every sample is an idle gap + warm + timed replays (~9 ms even for a
# 5 us kernel), so the sample cap, not the kernel, sets the cost: 40 samples of
# 112 combinations x 4 rounds (two commits, interleaved) made the whole-suite
# `asv continuous` on the H100 379 s (6 min allowed).  20 a round (40 a commit
# over the two rounds CI runs) keeps the medians within the calibrated spreads.
ASV_BUDGET_GPU = dataclasses.replace(ASV_BUDGET, max_samples=20, budget_s=0.2)
REGIME_CODES = {name: i for i, name in enumerate(roofline.REGIMES)}
# asv prints a unit-less figure as the float itself (5.223710399461449±0.94).  The suite
# rounds the ratios, error figures and rates it hands asv to FIGURE_DIGITS significant
# digits (:func:`figure`) -- finer than any verdict needs (the smallest factor is 1.05);
# timings go to asv as measured (asv prints them with their unit).
FIGURE_DIGITS = 4
# Entry statuses of a config that was run and did not end well (a wrong result, the kernel
# raised, its worker died, it ran out of time).
FAILING = ("failed", "error", "crashed", "timed_out")
_FAILING_WORDS = {"failed": "wrong result", "error": "error", "crashed": "crash",
                  "timed_out": "time-out"}


def key(kernel: str, problem: str) -> str:
    return f"{kernel}|{problem}"


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    return [x.strip() for x in raw.split(",") if x.strip()] or None


def project(project_dir: str | Path | None) -> ProjectConfig | None:
    """``[tool.attnperf]`` of the repository at ``project_dir`` (None: defaults)."""
    if project_dir is None:
        return None
    path = Path(project_dir) / project_config.PYPROJECT
    return project_config.load(path) if path.is_file() else None


def grid(project_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """The suite's params (kernels, problem ids): the repository's config, else the default.
    Raises ConfigError for an invalid ``[tool.attnperf]``."""
    return _grid(project(project_dir))


def _grid(config: ProjectConfig | None) -> tuple[list[str], list[str]]:
    kernels = (config.tracked if config and config.tracked else None) or list(GRID_KERNELS)
    problems = ([p.id for p in config.problems] if config and config.problems
                else list(GRID_PROBLEMS))
    return kernels, problems


def device_grid(project_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """:func:`grid` as asv shows it on this machine's device (:func:`asv_device`): on a
    CPU, only the problems a CPU runs (:func:`fits_device`) and those ``ATTNPERF_ASV_PROBLEMS``
    asks for, so the CPU's tables carry no rows that could only read n/a; on a GPU the
    whole grid.  The ids are the grid's own (history keys), in the grid's order; a grid with
    no problem for this device stays whole (``measure_grid`` then says why).  Raises
    ConfigError for an invalid ``[tool.attnperf]``."""
    config = project(project_dir)
    kernels, problems = _grid(config)
    return kernels, _for_device(problems, asv_device())


def device_pass_grid(project_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """:func:`pass_grid` as asv shows it on this machine's device (see :func:`device_grid`)."""
    problems, modes = _pass_grid(project(project_dir))
    if problems == [NO_PASSES]:
        return problems, modes
    return _for_device(problems, asv_device()), modes


def _for_device(problem_ids: list[str], device: str) -> list[str]:
    if device != "cpu":
        return list(problem_ids)
    asked = set()
    for name in _env_list("ATTNPERF_ASV_PROBLEMS") or []:
        try:
            asked.add(resolve(name).id)
        except UnknownNameError:
            pass  # measure_grid names the typo
    kept = [pid for pid in problem_ids if pid in asked or _fits_id(pid, device)]
    return kept or list(problem_ids)


def _fits_id(problem_id: str, device: str) -> bool:
    try:
        problem = resolve(problem_id)
    except UnknownNameError:
        return True  # not ours to judge: asv shows what the suite makes of it
    return fits_device(problem, device)[0]


NO_PASSES = "(none)"  # the training grid's placeholder param where a repository has none


def pass_grid(project_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """The training grid's params (problem ids, passes).  attnperf's default:
    :data:`GRID_PASS_PROBLEMS` x :data:`GRID_PASSES`.  A repository with
    ``[tool.attnperf]`` opts in with ``passes = [...]`` (its problems, or the default
    ones, under its backward passes); without them both lists are :data:`NO_PASSES`
    (asv shows n/a).  Raises ConfigError for an invalid ``[tool.attnperf]``."""
    return _pass_grid(project(project_dir))


def _pass_grid(config: ProjectConfig | None) -> tuple[list[str], list[str]]:
    if config is None:
        return list(GRID_PASS_PROBLEMS), list(GRID_PASSES)
    modes = [m for m in config.passes if m in GRID_PASSES]
    if not modes:
        return [NO_PASSES], [NO_PASSES]
    return ([p.id for p in config.problems] if config.problems else list(GRID_PASS_PROBLEMS)), modes


def pass_key(problem: str, mode: str) -> str:
    """The cache's problem id of a forward problem id (or preset) under the pass ``mode``
    (benchmarks/ calls it by this name)."""
    return pass_id(problem, mode)


def selected_passes() -> list[str]:
    """ATTNPERF_ASV_PASSES (default: every pass); SelectionError for an unknown one."""
    names = _env_list("ATTNPERF_ASV_PASSES") or list(PASSES)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise SelectionError(f"ATTNPERF_ASV_PASSES: unknown pass(es) "
                             f"{', '.join(map(repr, unknown))}; allowed: {', '.join(PASSES)}")
    return names


def selection(project_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Kernels and problem ids to measure (env lists take preset names or ids).

    Every name must be in the grid: anything else could never show up in asv's
    table (its parameters are the static grid), so a typo would read as n/a.
    """
    return _selection(project(project_dir))


def _selection(config: ProjectConfig | None) -> tuple[list[str], list[str]]:
    grid_kernels, grid_problems = _grid(config)
    kernels = _env_list("ATTNPERF_ASV_KERNELS") or list(grid_kernels)
    unknown = [k for k in kernels if k not in grid_kernels]
    if unknown:
        raise SelectionError(f"ATTNPERF_ASV_KERNELS: unknown kernel(s) "
                             f"{', '.join(map(repr, unknown))}; allowed: {', '.join(grid_kernels)}")
    problems = []
    for name in _env_list("ATTNPERF_ASV_PROBLEMS") or grid_problems:
        try:
            pid = resolve(name).id
        except UnknownNameError:
            pid = None
        if pid not in grid_problems:
            names = [n for n, p in PRESETS.items() if p.id in grid_problems]
            allowed = ", ".join(names or grid_problems)
            raise SelectionError(f"ATTNPERF_ASV_PROBLEMS: {name!r} is not a problem of the asv "
                                 f"grid; allowed: {allowed} (or their ids)")
        problems.append(pid)
    return kernels, problems


def load_plugins(config: ProjectConfig | None) -> dict[str, str]:
    """Load the config's kernel-modules; returns reference -> error for those that fail
    (the suite records them, it never raises: an old commit may lack the module)."""
    failed = {}
    for ref in (config.kernel_modules if config else ()):
        try:
            registry.add_reference(ref)
        except PluginError as exc:
            failed[ref] = str(exc)
    return failed


def entry(m: Measurement) -> dict[str, Any]:
    e: dict[str, Any] = {
        "status": m.status, "reason": m.reason, "device": m.device, "dispatch": m.dispatch,
        "correctness": m.correctness.to_dict() if m.correctness else None,
        "gradients": {n: c.to_dict() for n, c in m.gradients.items()} if m.gradients else None,
        "device_time_s": list(m.device_time.samples_s) if m.device_time else None,
        "device_time_method": m.device_time.method if m.device_time else None,
        "latency_s": list(m.latency.samples_s) if m.latency else None}
    if m.peak_memory is not None:
        e.update(peak_memory_bytes=m.peak_memory.peak_bytes, peak_memory_note=m.peak_memory.note)
    dt = m.device_time
    if dt is not None and dt.clock_source:
        # GPU: how the power state was controlled, the clocks, and whether the
        # samples are steady (keys of Samples.power_state, then the sustained view).
        e.update(dt.power_state(), calls_per_sample=dt.calls_per_sample,
                 sustained_time_s=list(dt.sustained.samples_s) if dt.sustained else None)
    if dt is not None and dt.cpu_clock:
        # CPU, 1 thread: device_time_s (gated) is the thread's CPU time per call;
        # wall time and the speed-normalised figure are kept, ungated.
        e.update(cpu_clock=dt.cpu_clock, wall_time_s=list(dt.wall_s),
                 normalised_time_s=list(dt.normalised_s), cpu_reference_s=list(dt.reference_s),
                 calls_per_sample=dt.calls_per_sample)
    if m.roofline is not None:
        r = m.roofline
        e.update(floor_s=r.floor_s, tflops=r.achieved_tflops, gb_s=r.achieved_gb_s,
                 efficiency_pct=r.efficiency_pct, x_over_floor=r.x_over_floor, regime=r.regime,
                 arithmetic_intensity=r.arithmetic_intensity, ceiling_source=r.ceiling_source)
    return e


def measure_grid(kernels: list[str] | None = None, problems: list[str] | None = None,
                 device_name: str | None = None, budget: Budget | None = None,
                 project_dir: str | Path | None = None,
                 timeout_s: float | None = None) -> dict[str, dict[str, Any]]:
    """Measure every (kernel, problem) once; failures become entries, never exceptions.

    ``project_dir``: the tracked repository (its ``[tool.attnperf]``); ``timeout_s``
    limits each combination (default: the run's default for ``budget``); ``budget``
    defaults to :data:`ASV_BUDGET_GPU` on a GPU, :data:`ASV_BUDGET` on a CPU.  On a
    GPU attnperf's default grid leaves out the CPU machine kind's presets (``cpu_*``)
    unless they are selected (``problems`` or ``ATTNPERF_ASV_PROBLEMS``).  ``ATTNPERF_ASV_SHARD``:
    that shard's combinations only (``__meta__`` names it; the others read n/a).
    """
    config = project(project_dir)  # read once: grid, selection and passes all follow it
    shard = Shard.from_environ() or Shard(1, 1)  # 1/1: every combination
    plugin_errors = load_plugins(config)
    sel_k, sel_p = _selection(config)
    kernels = kernels or sel_k
    problem_objs = [resolve(p) for p in (problems or sel_p)]
    grid_problems, grid_modes = _pass_grid(config)
    modes = [m for m in selected_passes() if m in grid_modes]
    device = resolve_device(device_name or os.environ.get("ATTNPERF_ASV_DEVICE", "auto"))
    if budget is None:
        budget = ASV_BUDGET_GPU if device == "cuda" else ASV_BUDGET
    chosen = problems or _env_list("ATTNPERF_ASV_PROBLEMS")
    if device == "cuda" and not chosen and not (config and config.problems):
        # The cpu_* presets are the 2-core CPU's problems (float32, sized for it); the
        # GPU has its own (seed ... train).  Measured on request only.
        problem_objs = [p for p in problem_objs if p.id not in CPU_PROBLEM_IDS]
    pass_problems = [p for p in grid_problems if p in {q.id for q in problem_objs}]
    if device == "cuda":  # the CPU's training problems are the CPU's (see GRID_PASS_PROBLEMS)
        pass_problems = [p for p in pass_problems if p not in CPU_PROBLEM_IDS]
    trained = [resolve(p).with_pass(m) for p in pass_problems for m in modes]

    def unfit(problem: Problem) -> str | None:
        ok, why = fits_device(problem, device)
        return None if ok else why

    if all(unfit(p) for p in problem_objs):
        # Every benchmark would be n/a and asv would exit 0 without a word.
        raise SelectionError(
            f"no selected problem runs on {device}: {unfit(problem_objs[0])}"
            + (f"; CPU problems: {', '.join(n for n in PRESETS if n.startswith('cpu_'))}"
               if device == "cpu" else ""))
    # Each combination in a worker process with the per-config limit that
    # `attnperf run` uses (a hang or crash is one failed entry, not a lost
    # commit); asv's own setup_cache timeout stays the outer limit.
    with Session(device, threads=CPU_THREADS, tolerances=config.tolerances if config else None,
                 isolate=True, timeout_s=timeout_s) as session:
        out: dict[str, dict[str, Any]] = {"__meta__": {
            "device": session.device, "environment": session.environment,
            "ceilings": session.ceilings, **({"shard": str(shard)} if shard.count > 1 else {})}}
        known = set(registry.names())
        for k in [k for k in kernels if registry.canonical_name(k) not in known]:
            why = "; ".join([f"no kernel named {k!r} is registered"] + list(plugin_errors.values()))
            for p in [p for p in problem_objs + trained if shard.owns(k, p.id)]:
                out[key(k, p.id)] = {"status": "error", "reason": why, "device": session.device}
        # Latency is a view of the forward problems only (LatencyViews): the training
        # passes skip it (on the H100 the whole-suite A/A ran 409 s with it, 6 min allowed).
        for group, latency in ((problem_objs, session.device == "cuda"), (trained, False)):
            jobs = [(k, p) for p in group for k in kernels
                    if registry.canonical_name(k) in known and shard.owns(k, p.id)]
            for m in session.iter_grid(jobs, budget=budget, latency=latency, skip=unfit):
                out[key(m.kernel, m.problem.id)] = entry(m)
    return out


def entry_for(cache: dict[str, dict[str, Any]], kernel: str, problem: str) -> dict[str, Any]:
    """The setup-time check: n/a for what cannot run, an assertion for wrong results."""
    e = cache.get(key(kernel, problem))
    if e is None:
        device = (cache.get("__meta__") or {}).get("device")
        if device == "cuda" and any(problem in (pass_id(c, "bwd"), pass_id(c, "fwd+bwd"))
                                    for c in CPU_PROBLEM_IDS):
            raise Skip(f"{problem}: the CPU's training problem; "
                       "the GPU times passes at causal, gqa, train")
        if device == "cuda" and problem in CPU_PROBLEM_IDS:
            name = next(n for n, p in PRESETS.items() if p.id == problem)
            raise Skip(f"{problem}: the CPU machine kind's problem; a GPU measures it on request: "
                       f"ATTNPERF_ASV_PROBLEMS={name}")
        shard = (cache.get("__meta__") or {}).get("shard")
        if isinstance(shard, str) and not Shard.parse(shard).owns(kernel, problem):
            raise Skip(f"{kernel}/{problem}: another shard than {shard} measures it")
        raise Skip(f"{kernel}/{problem} not selected (ATTNPERF_ASV_KERNELS/PROBLEMS)")
    status = e["status"]
    if status in ("unavailable", "skipped"):
        raise Skip(f"{kernel}/{problem}: {e['reason']}")
    if status == "failed":
        c = e["correctness"] or {}
        if c.get("passed"):  # the output is right: a gradient is wrong (training passes)
            raise AssertionError(f"{kernel}/{problem} is WRONG: {e['reason']}")
        raise AssertionError(
            f"{kernel}/{problem} is WRONG: rel_error={_g(c.get('rel_error'))} "
            f"(tolerance {_g(c.get('tolerance'))}), max_abs_error={_g(c.get('max_abs_error'))}, "
            f"nonfinite={c.get('nonfinite')}")
    if status != "ok":  # error, crashed, timed_out
        what = "raised" if status == "error" else status.replace("_", " ")
        raise RuntimeError(f"{kernel}/{problem} {what}: {e['reason']}")
    return e


def _g(value: object) -> str:
    return f"{value:.{FIGURE_DIGITS}g}" if isinstance(value, (int, float)) else str(value)


def samples(values: list[float]) -> dict[str, Any]:
    """asv's sample format for a track_ benchmark (parsed by asv as timing samples)."""
    return {"samples": list(values), "number": 1}


def figure(value: float) -> float:
    """``value`` rounded to :data:`FIGURE_DIGITS` significant digits: what a benchmark hands
    asv for a unit-less figure (asv prints the float it gets, every digit of it)."""
    return float(f"{float(value):.{FIGURE_DIGITS}g}")


def over_floor_samples(entry: dict[str, Any]) -> dict[str, Any]:
    """asv samples of x_over_floor: each device-time sample over the roofline floor time,
    rounded (:func:`figure`), an odd count of them.

    asv prints the median of the samples it pools over a commit's rounds; the median of an
    even count is the mean of the two middle ones, which a float prints as
    2.8055000000000003 however they were rounded.  With an odd count each round (the latest
    sample left out of this view when the count is even; ``device_time_s`` keeps them all),
    an odd number of rounds -- the README's three -- pools an odd count, whose median is one
    of the rounded samples.  The entry must have a ``floor_s``.
    """
    times = list(entry["device_time_s"])
    if len(times) % 2 == 0 and len(times) > 1:
        times = times[:-1]
    return samples([figure(t / entry["floor_s"]) for t in times])


def failure_summary(cache: dict[str, dict[str, Any]], configs: list[tuple[str, str]],
                    config: tuple[str, str]) -> str:
    """The line that closes a grid's failure report in asv's output.

    ``configs``: the grid's (kernel, cache problem id) in asv's parameter order; ``config``:
    the one being reported.  Returns "" unless ``config`` is the last of ``configs`` that
    failed (:data:`FAILING`); for that one, how many of the grid's configs that ran failed,
    and how.
    """
    def status(c: tuple[str, ...]) -> Any:  # the entry's status; None when there is none
        return (cache.get(key(*c)) or {}).get("status")

    failing = [tuple(c) for c in configs if status(c) in FAILING]
    if not failing or failing[-1] != tuple(config):
        return ""
    ran = sum(status(c) in FAILING + ("ok",) for c in configs)
    counts: dict[str, int] = {}
    for c in failing:
        counts[status(c)] = counts.get(status(c), 0) + 1
    how = ", ".join(f"{n} {_FAILING_WORDS[s]}{'' if n == 1 else 's'}" for s, n in counts.items())
    return (f"attnperf: {len(failing)} of {ran} kernel x problem configs failed at this commit "
            f"({how}), one line each above; every other config was measured")
