"""``attnperf run``: check and time kernels over problems, print a table, write a report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn

from tqdm import tqdm  # type: ignore[import-untyped]  # no tqdm stubs installed

from .. import __version__
from ..asv.devices import device_problems, fits_device
from ..asv.suite import CPU_THREADS
from ..errors import OutputPathError, Terminated, UsageError
from ..io.files import output_lock
from ..io.jsonfile import check_writable, write_json
from ..io.project_config import load_nearest
from ..io.report import build_report
from ..kernels import registry
from ..measure.device import resolve_device
from ..measure.session import Session, default_timeout_s
from ..measure.timing import Budget
from ..model.catalog import PRESETS, sweep
from ..model.config import ProjectConfig
from ..model.problem import PASSES, Problem
from ..model.records import BROKEN_STATUSES, Measurement
from ..render.table import render_table
from .command import Command, ExitCode, int_in, positive_float, positive_int, text

EXIT_SIGINT, EXIT_SIGTERM = ExitCode.INTERRUPTED, ExitCode.TERMINATED  # 128 + the signal
# The largest sampling budget and per-config limit: ten minutes of sampling per timing,
# a day per config (the worker's timers and polls take no more).
MAX_BUDGET_MS = 600_000.0
MAX_TIMEOUT_S = 86_400.0


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What ``attnperf run`` was asked for, as typed values (None: the default applies).

    ``kernels``, ``kernel_modules`` and ``passes`` hold the flags' values as given
    (repeated, comma lists); :meth:`Run.run` resolves and checks them."""

    kernels: tuple[str, ...] = ()
    kernel_modules: tuple[str, ...] = ()
    batch: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    seq: int | None = None
    seq_kv: int | None = None
    dim: int | None = None
    dtype: str | None = None
    causal: bool = False
    sweep: str | None = None
    passes: tuple[str, ...] = ()
    device: str = "auto"
    output: str | None = None
    budget_ms: float | None = None
    latency: bool = True
    l2_flush: bool = True
    seed: int | None = None
    threads: int | None = None
    timeout_s: float | None = None
    in_process: bool = False
    verbose: bool = False


class Run(Command):
    name = "run"
    help = "check and time kernels over problems: a table, and a JSON report with --output"
    exit_codes = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE, ExitCode.INTERRUPTED,
                  ExitCode.TERMINATED)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        r = parser
        r.add_argument(
            "--kernel",
            action="append",
            metavar="NAME",
            type=text("kernel"),
            help="kernel to run (repeat or comma-separate; default: [tool.attnperf]'s, else all)",
        )
        r.add_argument("--kernel-module", action="append", metavar="MODULE:ATTR",
                       type=text("kernel-module"),
                       help="also load the kernel(s) that MODULE:ATTR names (repeatable)")
        r.add_argument("--batch", type=positive_int("batch"), help="batch size (default 8)")
        r.add_argument("--heads", type=positive_int("heads"), help="query heads (default 4)")
        r.add_argument("--kv-heads", type=positive_int("kv-heads"),
                       help="K/V heads (GQA when fewer than --heads)")
        r.add_argument("--seq", type=positive_int("seq"), help="query length (default 64)")
        r.add_argument("--seq-kv", type=positive_int("seq-kv"),
                       help="key/value length (default: --seq)")
        r.add_argument("--dim", type=positive_int("dim"), help="head dimension (default 64)")
        r.add_argument("--dtype", type=text("dtype"),
                       help="float16|bfloat16|float32 (aliases fp16, bf16, fp32; "
                       "default fp16 on a GPU, fp32 on a CPU)")
        r.add_argument("--causal", action="store_true", help="causal masking")
        r.add_argument("--sweep", type=text("sweep"),
                       help="named sweep (see `attnperf kernels --sweeps`)")
        r.add_argument("--pass", dest="passes", action="append", metavar="PASS", type=text("pass"),
                       help="fwd|bwd|fwd+bwd (repeat or comma-separate; default fwd): backward "
                            "passes time torch.autograd.grad and check dQ, dK, dV")
        r.add_argument("--device", default="auto", type=text("device"),
                       help="auto|cpu|cuda (default auto: cuda when present)")
        r.add_argument(
            "--output",
            "-o",
            type=text("output"),
            help="write the JSON report here (atomically; one run writes a file at a time)",
        )
        r.add_argument("--budget-ms", type=positive_float("budget-ms", MAX_BUDGET_MS, " ms"),
                       default=None, help="time spent sampling each timing (default 500; at most "
                       f"{MAX_BUDGET_MS:g})")
        r.add_argument(
            "--no-latency", action="store_true", help="GPU: skip the per-call latency timing"
        )
        r.add_argument(
            "--no-l2-flush", action="store_true", help="GPU: keep L2 warm between latency samples"
        )
        r.add_argument("--seed", type=int_in("seed", 0, 2 ** 63 - 1), default=None,
                       help="input seed (0 to 2**63-1)")
        r.add_argument(
            "--threads",
            type=positive_int("threads"),
            default=None,
            help="CPU threads for PyTorch (default: 1, as the asv CPU suite: steady on a "
            "small shared CPU; more than this machine's cores: its cores)",
        )
        r.add_argument("--timeout-s", type=positive_float("timeout-s", MAX_TIMEOUT_S, " s"),
                       default=None,
                       help="limit per config; past it the config is 'timed_out' and the sweep "
                            "goes on (default: 60, or 40x (budget + warm-up) when larger; at "
                            f"most {MAX_TIMEOUT_S:g})")
        r.add_argument("--in-process", action="store_true",
                       help="measure in this process, for debuggers (default: each config in a "
                            "worker process, so a crash or hang is recorded and the sweep goes on)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(RunOptions(
            kernels=tuple(args.kernel or ()), kernel_modules=tuple(args.kernel_module or ()),
            batch=args.batch, heads=args.heads, kv_heads=args.kv_heads, seq=args.seq,
            seq_kv=args.seq_kv, dim=args.dim, dtype=args.dtype, causal=args.causal,
            sweep=args.sweep, passes=tuple(args.passes or ()), device=args.device,
            output=args.output, budget_ms=args.budget_ms, latency=not args.no_latency,
            l2_flush=not args.no_l2_flush, seed=args.seed, threads=args.threads,
            timeout_s=args.timeout_s, in_process=args.in_process, verbose=args.verbose))

    @classmethod
    def run(cls, options: RunOptions) -> int:
        return run_kernels(options)


def _custom(o: RunOptions) -> bool:
    """Whether the flags describe one custom problem (--batch ... --causal)."""
    return o.causal or any(x is not None for x in (o.batch, o.heads, o.kv_heads, o.seq,
                                                    o.seq_kv, o.dim, o.dtype))


def _problems(o: RunOptions, config: ProjectConfig | None = None,
              device: str = "cuda") -> list[Problem]:
    if o.sweep and _custom(o):
        raise UsageError(
            "--sweep cannot be combined with --batch/--heads/--seq/--dim/--dtype/--causal"
        )
    if o.sweep and config is not None and o.sweep in config.sweeps:
        return list(config.sweeps[o.sweep])
    if o.sweep:
        return sweep(o.sweep)
    if _custom(o):
        seed = PRESETS["seed"]
        return [Problem(batch=o.batch or seed.batch, heads=o.heads or seed.heads,
                        kv_heads=o.kv_heads, seq_q=o.seq or seed.seq_q, seq_kv=o.seq_kv,
                        head_dim=o.dim or seed.head_dim, causal=o.causal,
                        # CPU half precision is slow and rarely used: float32 there.
                        dtype=o.dtype or ("float32" if device == "cpu" else seed.dtype))]
    if config is not None and config.problems:
        # Those the device runs: a CPU run shows no row of a GPU problem unless asked for.
        return device_problems(config, device)
    return []  # filled with the device's default sweep


def passes(given: Sequence[str]) -> list[str]:
    """The --pass values (repeated or comma lists), in the order given; default fwd."""
    names = [n.strip() for arg in given for n in arg.split(",")]
    if given and not any(names):
        raise UsageError(f"--pass {','.join(given)!r} names no pass; allowed: {', '.join(PASSES)}")
    for n in names:
        if n not in PASSES:
            raise UsageError(f"--pass: unknown pass {n!r}; allowed: {', '.join(PASSES)}")
    return list(dict.fromkeys(n for n in names if n)) or ["fwd"]


def plugins(kernel_modules: Sequence[str], config: ProjectConfig | None = None) -> None:
    """Load --kernel-module and [tool.attnperf] kernel-modules references (PluginError: exit 2)."""
    for ref in (config.kernel_modules if config else ()):
        registry.add_reference(ref)
    for ref in kernel_modules:
        registry.add_reference(ref)


def _kernels(given: Sequence[str], config: ProjectConfig | None = None) -> list[str]:
    if not given and config is not None and config.tracked:
        for n in config.tracked:
            if registry.canonical_name(n) not in registry.names():
                raise UsageError(f"{config.source}: [tool.attnperf] names unknown kernel {n!r}; "
                                 f"allowed: {', '.join(registry.names())}")
        return [registry.canonical_name(n) for n in config.tracked]
    if not given:
        return registry.names()
    names = [n.strip() for arg in given for n in arg.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--kernel {','.join(given)!r} names no kernel; "
                         f"allowed: {', '.join(registry.names())}")
    for n in names:
        registry.get(n)  # raises UnknownNameError listing the valid names
    # each kernel once (`--kernel sdpa,sdpa`, or a name and its alias): one id per config
    return list(dict.fromkeys(registry.canonical_name(n) for n in names))


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_recorded(received: list[int]) -> Iterator[None]:
    """SIGINT/SIGTERM only noted in ``received`` during the block: a finished run writes
    its complete report and prints its table whatever arrives meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in handled}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (a report write is never cut)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_kernels(o: RunOptions) -> int:
    """Check, time and report what ``o`` asks for; returns the :class:`ExitCode`."""
    config = load_nearest()  # [tool.attnperf] of the repository here, if any
    plugins(o.kernel_modules, config)
    device = resolve_device(o.device)
    problems = _problems(o, config, device)
    if config is not None and config.problems and problems != list(config.problems) \
            and not o.sweep and not _custom(o):
        left_out = [p.id for p in config.problems if p not in problems]
        print(f"attnperf: [tool.attnperf] problems that need a GPU, left out on {device}: "
              f"{', '.join(left_out)} (--sweep or the size flags ask for others)",
              file=sys.stderr)
    kernels = _kernels(o.kernels, config)
    modes = passes(o.passes)
    if o.output is not None:
        check_writable(o.output)
    for flag, value, most in (("--budget-ms", o.budget_ms, MAX_BUDGET_MS),
                              ("--timeout-s", o.timeout_s, MAX_TIMEOUT_S)):
        if value is not None and not (math.isfinite(value) and 0 < value <= most):
            raise UsageError(f"{flag} must be a positive number of at most {most:g}, got {value}")
    o = dataclasses.replace(o, threads=_threads(o.threads))
    # One writer per report: a second `run -o same.json` fails here, before measuring.
    lock = output_lock(o.output) if o.output is not None else contextlib.nullcontext()
    with lock:
        try:
            with _sigterm_raises():
                return _run(o, problems, kernels, config, modes)
        except Terminated:
            print("error: terminated", file=sys.stderr)
            return EXIT_SIGTERM


def _threads(threads: int | None) -> int | None:
    """--threads, at most this machine's cores (more only queue; tens of thousands make the
    OpenMP runtime fail or crash), saying so when it lowers it."""
    cores = os.cpu_count() or 1
    if threads is not None and threads > cores:
        print(f"note: --threads {threads} is more than this machine's {cores} cores; "
              f"using {cores}", file=sys.stderr)
        return cores
    return threads


def _run(o: RunOptions, problems: list[Problem], kernels: list[str],
         config: ProjectConfig | None = None, modes: Sequence[str] = ("fwd",)) -> int:
    isolate = not o.in_process
    had_report = bool(o.output and os.path.lexists(o.output))
    # The asv suite's thread count unless --threads says otherwise: on a small
    # shared CPU, PyTorch's default (one thread per core) stuck readings at
    # multiples of ~8 ms of barrier waits, IQR up to 2810 %.
    late: list[int] = []  # signals that arrived once every config was measured
    # entered once the last config is measured; left after the session has closed too
    finishing = contextlib.ExitStack()
    with finishing, Session(o.device, threads=o.threads or CPU_THREADS, isolate=isolate,
                            timeout_s=o.timeout_s,
                            tolerances=config.tolerances if config else None) as session:
        device, env = session.device, session.environment
        if not problems:
            problems = sweep("gpu-default" if device == "cuda" else "cpu-small")
        problems = list(dict.fromkeys(p.with_pass(mode) for p in problems for mode in modes))
        budget = Budget() if o.budget_ms is None else Budget(budget_s=o.budget_ms / 1e3)
        timeout_s = (o.timeout_s or default_timeout_s(budget)) if isolate else None
        where = (f"{env['gpu_name']} (cuda)" if device == "cuda" else
                 f"{env['cpu_model']} (cpu, {env['torch_threads']} thread"
                 f"{'' if env['torch_threads'] == 1 else 's'}"
                 f"{'' if o.threads else '; --threads N to change'})")
        print(f"attnperf {__version__}: {len(kernels)} kernels x {len(problems)} problems on "
              f"{where}, torch {env['torch']}; "
              + (f"each config in a worker process, limit {timeout_s:g} s" if isolate
                 else "in this process (no isolation, no time limit)"), file=sys.stderr)
        jobs = [(k, p) for p in problems for k in kernels]
        settings = {"device": device, "kernels": kernels, "problems": [p.id for p in problems],
                    "budget_s": budget.budget_s, "latency": o.latency,
                    "l2_flush": o.l2_flush, "sweep": o.sweep,
                    "isolated": isolate, "timeout_s": timeout_s, "passes": list(modes)}
        measured: list[Measurement] = []

        def report(finished: bool) -> dict[str, Any]:
            not_run = [f"{k}/{p.id}" for k, p in jobs[len(measured):]]
            return build_report(measured, env, session.ceilings, settings,
                                interrupted=not finished, not_run=not_run)

        def save(finished: bool) -> None:
            # After every config, so a killed run keeps what it measured (marked
            # interrupted until the last write); never an empty report, and an
            # existing report is not replaced until something was measured.
            if o.output and measured and (_measured_any(measured) or not had_report):
                with _signals_deferred():
                    write_json(o.output, report(finished))

        kw: dict[str, Any] = {} if o.seed is None else {"seed": o.seed}
        if (
            config is not None
            and config.problems
            and not o.sweep
            and {p.with_pass("fwd") for p in problems} == set(config.problems)
        ):  # the suite's device rule
            kw["skip"] = lambda p: fits_device(p, device)[1] or None
        stopped = None
        try:
            with tqdm(total=len(jobs), desc="attnperf run", unit="config", disable=None,
                      file=sys.stderr, leave=False) as bar:
                def progress(kernel: str, problem: Problem) -> None:
                    bar.set_postfix_str(f"{kernel} {problem.id}")
                    bar.update(1)
                for m in session.iter_grid(jobs, budget=budget, latency=o.latency,
                                           l2_flush=o.l2_flush, progress=progress, **kw):
                    measured.append(m)
                    save(finished=False)
        except KeyboardInterrupt:
            stopped = EXIT_SIGINT
        except Terminated:
            stopped = EXIT_SIGTERM
        if stopped is not None and len(measured) == len(jobs):
            late.append(signal.SIGINT if stopped == EXIT_SIGINT else signal.SIGTERM)
            stopped = None  # the run is complete: its report is not an interrupted one
        if stopped is None:
            finishing.enter_context(_signals_recorded(late))
        session.close()  # a worker still inside a kernel is killed now
        save(finished=stopped is None)
        final = report(finished=stopped is None)
        code = _conclude(o, measured, jobs, final, stopped, had_report)
    if late:
        names = " and ".join(sorted({signal.Signals(n).name for n in late}))
        print(f"note: {names} arrived after the last config; the run had finished and "
              "everything above was written", file=sys.stderr)
    return code


def _conclude(o: RunOptions, measured: list[Measurement], jobs: list[tuple[str, Problem]],
              final: dict[str, Any], stopped: int | None, had_report: bool) -> int:
    """The table, what was written, the summary line; the exit code."""
    if measured:
        print(render_table(measured, verbose=o.verbose))
    if stopped is not None:
        what = "interrupted" if stopped == EXIT_SIGINT else "terminated"
        print(f"{what}: {len(measured)} of {len(jobs)} configs measured"
              + (f"; partial report in {o.output} (\"interrupted\": true)"
                 if o.output and measured else "; nothing written"), file=sys.stderr)
        return stopped
    if had_report and not _measured_any(measured):
        raise OutputPathError(f"nothing was measured (every config skipped or unavailable); "
                              f"not replacing the existing report {o.output!r}")
    if o.output and measured:
        print(f"wrote {o.output}", file=sys.stderr)
    s = final["summary"]
    line = (f"{s['ok']} ok, {s['failed']} failed, {s['error']} errors, {s['skipped']} skipped, "
            f"{s['unavailable']} unavailable")
    line += "".join(f", {s[k]} {k.replace('_', ' ')}" for k in ("crashed", "timed_out") if s[k])
    print(line, file=sys.stderr)
    broken = sum(s[k] for k in BROKEN_STATUSES)
    if s["ok"] == 0 and not broken:
        print("nothing could be measured (every config skipped or unavailable; reasons above)",
              file=sys.stderr)
        return ExitCode.FAILURE
    return ExitCode.FAILURE if broken else ExitCode.OK


def _measured_any(measurements: Iterable[Measurement]) -> bool:
    """Whether any config got as far as running its kernel (a result worth a report)."""
    return any(m.status in ("ok", "failed") or m.status in BROKEN_STATUSES for m in measurements)
