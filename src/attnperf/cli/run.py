"""``attnperf run``: check and time kernels over problems (the seed's integrated_test.py)."""

from __future__ import annotations

import os
import sys
from typing import List

from tqdm import tqdm

from .. import __version__
from ..asv.suite import fits_device
from ..errors import OutputPathError
from ..io.jsonfile import check_writable, write_json
from ..io.project_config import load_nearest
from ..io.report import build_report
from ..kernels import registry
from ..measure.session import Session
from ..measure.timing import Budget
from ..model.catalog import PRESETS, sweep
from ..model.problem import Problem
from ..render import fmt
from .common import EXIT_FAIL, EXIT_OK, UsageError


def _problems(args, config=None) -> list:

    custom = [args.batch, args.heads, args.kv_heads, args.seq, args.seq_kv, args.dim, args.dtype]
    if args.sweep and (any(x is not None for x in custom) or args.causal):
        raise UsageError("--sweep cannot be combined with --batch/--heads/--seq/--dim/--dtype/--causal")
    if args.sweep and config is not None and args.sweep in config.sweeps:
        return list(config.sweeps[args.sweep])
    if args.sweep:
        return sweep(args.sweep)
    if any(x is not None for x in custom) or args.causal:
        seed = PRESETS["seed"]
        return [Problem(batch=args.batch or seed.batch, heads=args.heads or seed.heads,
                        kv_heads=args.kv_heads, seq_q=args.seq or seed.seq_q, seq_kv=args.seq_kv,
                        head_dim=args.dim or seed.head_dim, causal=args.causal,
                        dtype=args.dtype or seed.dtype)]
    if config is not None and config.problems:
        return list(config.problems)
    return []  # filled with the device's default sweep


def plugins(args, config=None) -> None:
    """Load --kernel-module and [tool.attnperf] kernel-modules references (PluginError: exit 2)."""
    for ref in (config.kernel_modules if config else ()):
        registry.add_reference(ref)
    for ref in getattr(args, "kernel_module", None) or ():
        registry.add_reference(ref)


def _kernels(args, config=None) -> List[str]:
    if not args.kernel and config is not None and config.tracked:
        for n in config.tracked:
            if registry.canonical_name(n) not in registry.names():
                raise UsageError(f"{config.source}: [tool.attnperf] names unknown kernel {n!r}; "
                                 f"allowed: {', '.join(registry.names())}")
        return [registry.canonical_name(n) for n in config.tracked]
    if not args.kernel:
        return registry.names()
    names = [n.strip() for arg in args.kernel for n in arg.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--kernel {','.join(args.kernel)!r} names no kernel; "
                         f"allowed: {', '.join(registry.names())}")
    for n in names:
        registry.get(n)  # raises UnknownNameError listing the valid names
    return [registry.canonical_name(n) for n in names]


def cmd_run(args) -> int:
    config = load_nearest()  # [tool.attnperf] of the repository here, if any
    plugins(args, config)
    problems = _problems(args, config)
    kernels = _kernels(args, config)
    if args.output:
        check_writable(args.output)
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise UsageError(f"--budget-ms must be positive, got {args.budget_ms}")
    session = Session(args.device, threads=args.threads,
                      tolerances=config.tolerances if config else None)
    device, env = session.device, session.environment
    if not problems:
        problems = sweep("gpu-default" if device == "cuda" else "cpu-small")
    budget = Budget() if args.budget_ms is None else Budget(budget_s=args.budget_ms / 1e3)
    print(f"attnperf {__version__}: {len(kernels)} kernels x {len(problems)} problems on "
          f"{env['gpu_name'] or env['cpu_model']} ({device}), torch {env['torch']}", file=sys.stderr)
    jobs = [(k, p) for p in problems for k in kernels]
    kw = {} if args.seed is None else {"seed": args.seed}
    with tqdm(total=len(jobs), desc="attnperf run", unit="config", disable=None, file=sys.stderr,
              leave=False) as bar:
        def progress(kernel, problem):
            bar.set_postfix_str(f"{kernel} {problem.id}")
            bar.update(1)
        if config is not None and config.problems and not args.sweep and \
                problems == list(config.problems):  # the config's grid: the suite's device rule
            kw["skip"] = lambda p: fits_device(p, device)[1] or None
        measurements = session.measure_grid(jobs, budget=budget, latency=not args.no_latency,
                                            l2_flush=not args.no_l2_flush, progress=progress, **kw)
    print(render_table(measurements))
    settings = {"device": device, "kernels": kernels, "problems": [p.id for p in problems],
                "budget_s": budget.budget_s, "latency": not args.no_latency,
                "l2_flush": not args.no_l2_flush, "sweep": args.sweep}
    report = build_report(measurements, env, session.ceilings, settings)
    measured = any(m.status in ("ok", "failed", "error") for m in measurements)
    if args.output and not measured and os.path.lexists(args.output):
        raise OutputPathError(f"nothing was measured (every config skipped or unavailable); "
                              f"not replacing the existing report {args.output!r}")
    if args.output:
        write_json(args.output, report)
        print(f"wrote {args.output}", file=sys.stderr)
    s = report["summary"]
    print(f"{s['ok']} ok, {s['failed']} failed, {s['error']} errors, {s['skipped']} skipped, "
          f"{s['unavailable']} unavailable", file=sys.stderr)
    if s["ok"] == 0 and not (s["failed"] or s["error"]):
        print("nothing could be measured (every config skipped or unavailable; reasons above)",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_FAIL if s["failed"] or s["error"] else EXIT_OK


def _fmt(v, spec: str, none: str = "-") -> str:
    return fmt.num(v, spec, none=none)


def render_table(measurements) -> str:
    head = ["kernel", "problem", "status", "time ms", "iqr%", "latency ms", "TF/s", "GB/s",
            "regime", "eff%", "x_floor", "rel_err", "backend"]
    rows = []
    for m in measurements:
        st = m.device_time.stats() if m.device_time else None
        lat = m.latency.stats() if m.latency else None
        rf = m.roofline
        rows.append([
            m.kernel, m.problem.id, m.status,
            _fmt(st and st["median_ms"], ".4f"),
            _fmt(st and 100 * st["iqr_over_median"], ".1f") + ("!" if st and st["unstable"] else ""),
            _fmt(lat and lat["median_ms"], ".4f"),
            _fmt(rf and rf.achieved_tflops, ".2f"), _fmt(rf and rf.achieved_gb_s, ".1f"),
            rf.regime if rf else "-", _fmt(rf and rf.efficiency_pct, ".1f"),
            _fmt(rf and rf.x_over_floor, ".2f"),
            _fmt(m.correctness and m.correctness.rel_error, ".1e"),
            m.dispatch or "-",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in rows]
    notes = [f"  {m.kernel}/{m.problem.id}: {m.status}: {m.reason}" for m in measurements
             if m.status != "ok"]
    if notes:
        lines += ["", "not measured:"] + notes
    device = measurements[0].device if measurements else "cpu"
    unstable = [m for m in measurements if m.device_time and m.device_time.stats()["unstable"]]
    if unstable:
        lines += ["", f"! unstable: IQR above 10 % of the median for {len(unstable)} config(s); "
                      "the machine is busy or throttling (re-run, or fewer --threads on a shared CPU)"]
    unsteady = [m for m in measurements if m.device_time and m.device_time.unsteady]
    if unsteady:
        lines += ["", f"! unsteady: {len(unsteady)} config(s) kept running under power or thermal "
                      "slowdown after the retake budget (compare them with care):"]
        lines += [f"  {m.kernel}/{m.problem.id}: {m.device_time.unsteady_reason}" for m in unsteady]
    lines.append("")
    lines.append("time = device time per call (CUDA graph replays, each sample after an idle gap "
                 "and warm replays)" if device == "cuda" else "time = wall time per call on the CPU")
    if device == "cuda":
        lines.append(_clock_line(measurements))
        lines.append("latency = one isolated call (sync, L2 flushed, CUDA events)")
    return "\n".join(lines)


def _clock_line(measurements) -> str:
    """The SM clocks seen during the device-time samples (NVML), or why not."""
    mhz = [c for m in measurements if m.device_time
           for c in (m.device_time.sm_clocks_mhz() or []) if c is not None]
    if not mhz:
        return "clocks: unavailable (NVML not readable; pip install nvidia-ml-py)"
    retaken = sum(m.device_time.retaken for m in measurements if m.device_time)
    return (f"clocks: SM {min(mhz)}-{max(mhz)} MHz during the samples (NVML); "
            f"{retaken} sample(s) retaken for power or thermal slowdown")
