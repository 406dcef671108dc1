"""``attnperf run``: check and time kernels over problems (the seed's integrated_test.py)."""

from __future__ import annotations

import sys
from typing import List

from tqdm import tqdm

from .. import __version__
from ..asv.suite import CPU_THREADS
from ..io.jsonfile import check_writable, write_json
from ..io.report import build_report
from ..kernels import registry
from ..measure.device import resolve_device
from ..measure.session import Session
from ..measure.timing import Budget
from ..model.catalog import PRESETS, sweep
from ..model.problem import Problem
from ..render.table import render_table
from .common import EXIT_FAIL, EXIT_OK, UsageError


def _problems(args, device: str = "cuda") -> list:

    custom = [args.batch, args.heads, args.kv_heads, args.seq, args.seq_kv, args.dim, args.dtype]
    if args.sweep and (any(x is not None for x in custom) or args.causal):
        raise UsageError("--sweep cannot be combined with --batch/--heads/--seq/--dim/--dtype/--causal")
    if args.sweep:
        return sweep(args.sweep)
    if any(x is not None for x in custom) or args.causal:
        seed = PRESETS["seed"]
        return [Problem(batch=args.batch or seed.batch, heads=args.heads or seed.heads,
                        kv_heads=args.kv_heads, seq_q=args.seq or seed.seq_q, seq_kv=args.seq_kv,
                        head_dim=args.dim or seed.head_dim, causal=args.causal,
                        # CPU half precision is slow and rarely used: float32 there.
                        dtype=args.dtype or ("float32" if device == "cpu" else seed.dtype))]
    return []  # filled with the device's default sweep


def _kernels(args) -> List[str]:
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
    device = resolve_device(args.device)
    problems = _problems(args, device)
    kernels = _kernels(args)
    if args.output:
        check_writable(args.output)
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise UsageError(f"--budget-ms must be positive, got {args.budget_ms}")
    # The asv suite's thread count unless --threads says otherwise: on a small
    # shared CPU, PyTorch's default (one thread per core) stuck readings at
    # multiples of ~8 ms of barrier waits, IQR up to 2810 %.
    session = Session(device, threads=args.threads or CPU_THREADS)
    env = session.environment
    if not problems:
        problems = sweep("gpu-default" if device == "cuda" else "cpu-small")
    budget = Budget() if args.budget_ms is None else Budget(budget_s=args.budget_ms / 1e3)
    where = (f"{env['gpu_name']} (cuda)" if device == "cuda" else
             f"{env['cpu_model']} (cpu, {env['torch_threads']} thread"
             f"{'' if env['torch_threads'] == 1 else 's'}"
             f"{'' if args.threads else '; --threads N to change'})")
    print(f"attnperf {__version__}: {len(kernels)} kernels x {len(problems)} problems on "
          f"{where}, torch {env['torch']}", file=sys.stderr)
    jobs = [(k, p) for p in problems for k in kernels]
    kw = {} if args.seed is None else {"seed": args.seed}
    with tqdm(total=len(jobs), desc="attnperf run", unit="config", disable=None, file=sys.stderr,
              leave=False) as bar:
        def progress(kernel, problem):
            bar.set_postfix_str(f"{kernel} {problem.id}")
            bar.update(1)
        measurements = session.measure_grid(jobs, budget=budget, latency=not args.no_latency,
                                            l2_flush=not args.no_l2_flush, progress=progress, **kw)
    print(render_table(measurements, verbose=getattr(args, "verbose", False)))
    settings = {"device": device, "kernels": kernels, "problems": [p.id for p in problems],
                "budget_s": budget.budget_s, "latency": not args.no_latency,
                "l2_flush": not args.no_l2_flush, "sweep": args.sweep}
    report = build_report(measurements, env, session.ceilings, settings)
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
