"""``attnperf run``: check and time kernels over problems (the seed's integrated_test.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import List, Sequence

from tqdm import tqdm

from .. import __version__
from ..asv.suite import CPU_THREADS, fits_device
from ..errors import OutputPathError
from ..io.jsonfile import check_writable, write_json
from ..io.project_config import load_nearest
from ..io.report import build_report
from ..kernels import registry
from ..measure.device import resolve_device
from ..measure.session import Session, default_timeout_s
from ..measure.timing import Budget
from ..model.catalog import PRESETS, sweep
from ..model.problem import PASSES, Problem
from ..model.records import BROKEN_STATUSES, Measurement
from ..render.table import render_table
from .common import EXIT_FAIL, EXIT_OK, UsageError


def _problems(args, config=None, device: str = "cuda") -> list:

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
                        # CPU half precision is slow and rarely used: float32 there.
                        dtype=args.dtype or ("float32" if device == "cpu" else seed.dtype))]
    if config is not None and config.problems:
        return list(config.problems)
    return []  # filled with the device's default sweep


def passes(args) -> List[str]:
    """The --pass values (repeated or comma lists), in the order given; default fwd."""
    names = [n.strip() for arg in getattr(args, "passes", None) or () for n in arg.split(",")]
    if getattr(args, "passes", None) and not any(names):
        raise UsageError(f"--pass {','.join(args.passes)!r} names no pass; allowed: {', '.join(PASSES)}")
    for n in names:
        if n not in PASSES:
            raise UsageError(f"--pass: unknown pass {n!r}; allowed: {', '.join(PASSES)}")
    return list(dict.fromkeys(n for n in names if n)) or ["fwd"]


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


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as KeyboardInterrupt is for SIGINT
    (a BaseException: kernel code's ``except Exception`` must not swallow it)."""


EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report it


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM until the block is done (a report write is never cut)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def cmd_run(args) -> int:
    config = load_nearest()  # [tool.attnperf] of the repository here, if any
    plugins(args, config)
    device = resolve_device(args.device)
    problems = _problems(args, config, device)
    kernels = _kernels(args, config)
    modes = passes(args)
    if args.output:
        check_writable(args.output)
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise UsageError(f"--budget-ms must be positive, got {args.budget_ms}")
    if args.timeout_s is not None and args.timeout_s <= 0:
        raise UsageError(f"--timeout-s must be positive, got {args.timeout_s}")
    try:
        with _sigterm_raises():
            return _run(args, problems, kernels, config, modes)
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return EXIT_SIGTERM


def _run(args, problems: List[Problem], kernels: List[str], config=None,
         modes: Sequence[str] = ("fwd",)) -> int:
    isolate = not args.in_process
    had_report = bool(args.output) and os.path.lexists(args.output)
    # The asv suite's thread count unless --threads says otherwise: on a small
    # shared CPU, PyTorch's default (one thread per core) stuck readings at
    # multiples of ~8 ms of barrier waits, IQR up to 2810 %.
    with Session(args.device, threads=args.threads or CPU_THREADS, isolate=isolate,
                 timeout_s=args.timeout_s,
                 tolerances=config.tolerances if config else None) as session:
        device, env = session.device, session.environment
        if not problems:
            problems = sweep("gpu-default" if device == "cuda" else "cpu-small")
        problems = [p.with_pass(mode) for p in problems for mode in modes]
        budget = Budget() if args.budget_ms is None else Budget(budget_s=args.budget_ms / 1e3)
        timeout_s = (args.timeout_s or default_timeout_s(budget)) if isolate else None
        where = (f"{env['gpu_name']} (cuda)" if device == "cuda" else
                 f"{env['cpu_model']} (cpu, {env['torch_threads']} thread"
                 f"{'' if env['torch_threads'] == 1 else 's'}"
                 f"{'' if args.threads else '; --threads N to change'})")
        print(f"attnperf {__version__}: {len(kernels)} kernels x {len(problems)} problems on "
              f"{where}, torch {env['torch']}; "
              + (f"each config in a worker process, limit {timeout_s:g} s" if isolate
                 else "in this process (no isolation, no time limit)"), file=sys.stderr)
        jobs = [(k, p) for p in problems for k in kernels]
        settings = {"device": device, "kernels": kernels, "problems": [p.id for p in problems],
                    "budget_s": budget.budget_s, "latency": not args.no_latency,
                    "l2_flush": not args.no_l2_flush, "sweep": args.sweep,
                    "isolated": isolate, "timeout_s": timeout_s, "passes": list(modes)}
        measured: List[Measurement] = []

        def report(finished: bool) -> dict:
            not_run = [f"{k}/{p.id}" for k, p in jobs[len(measured):]]
            return build_report(measured, env, session.ceilings, settings,
                                interrupted=not finished, not_run=not_run)

        def save(finished: bool) -> None:
            # After every config, so a killed run keeps what it measured (marked
            # interrupted until the last write); never an empty report, and an
            # existing report is not replaced until something was measured.
            if args.output and measured and (_measured_any(measured) or not had_report):
                with _signals_deferred():
                    write_json(args.output, report(finished))

        kw = {} if args.seed is None else {"seed": args.seed}
        if config is not None and config.problems and not args.sweep and \
                {p.with_pass("fwd") for p in problems} == set(config.problems):  # the suite's device rule
            kw["skip"] = lambda p: fits_device(p, device)[1] or None
        stopped = None
        try:
            with tqdm(total=len(jobs), desc="attnperf run", unit="config", disable=None,
                      file=sys.stderr, leave=False) as bar:
                def progress(kernel, problem):
                    bar.set_postfix_str(f"{kernel} {problem.id}")
                    bar.update(1)
                for m in session.iter_grid(jobs, budget=budget, latency=not args.no_latency,
                                           l2_flush=not args.no_l2_flush, progress=progress, **kw):
                    measured.append(m)
                    save(finished=False)
        except KeyboardInterrupt:
            stopped = EXIT_SIGINT
        except Terminated:
            stopped = EXIT_SIGTERM
        session.close()  # a worker still inside a kernel is killed now
        save(finished=stopped is None)
        final = report(finished=stopped is None)
    if measured:
        print(render_table(measured, verbose=getattr(args, "verbose", False)))
    if stopped is not None:
        what = "interrupted" if stopped == EXIT_SIGINT else "terminated"
        print(f"{what}: {len(measured)} of {len(jobs)} configs measured"
              + (f"; partial report in {args.output} (\"interrupted\": true)"
                 if args.output and measured else "; nothing written"), file=sys.stderr)
        return stopped
    if had_report and not _measured_any(measured):
        raise OutputPathError(f"nothing was measured (every config skipped or unavailable); "
                              f"not replacing the existing report {args.output!r}")
    if args.output and measured:
        print(f"wrote {args.output}", file=sys.stderr)
    s = final["summary"]
    line = (f"{s['ok']} ok, {s['failed']} failed, {s['error']} errors, {s['skipped']} skipped, "
            f"{s['unavailable']} unavailable")
    line += "".join(f", {s[k]} {k.replace('_', ' ')}" for k in ("crashed", "timed_out") if s[k])
    print(line, file=sys.stderr)
    broken = sum(s[k] for k in BROKEN_STATUSES)
    if s["ok"] == 0 and not broken:
        print("nothing could be measured (every config skipped or unavailable; reasons above)",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_FAIL if broken else EXIT_OK


def _measured_any(measurements) -> bool:
    """Whether any config got as far as running its kernel (a result worth a report)."""
    return any(m.status in ("ok", "failed") or m.status in BROKEN_STATUSES for m in measurements)
