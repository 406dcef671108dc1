"""THE timers of attnperf: the CLI and the asv suite both time through here.

Each timer calls a kernel callable many times and returns
:class:`~attnperf.model.records.Samples` -- raw per-call samples (never
trimmed; statistics are median, IQR, mean, std, min) and how they were taken.
Sampling stops by the one rule of :class:`~attnperf.measure.budget.Budget`.

* :func:`time_cpu_thread` -- a CPU at one PyTorch thread: the measuring
  thread's CPU time per call (time descheduled does not count), with wall
  time and a speed-normalised figure as views (:mod:`.cpuclock`).
* :func:`time_cpu` -- a CPU otherwise (several threads, ceilings): wall time.
* :func:`time_cuda_device` -- the GPU's **device time**: the calls captured in
  a CUDA graph (:mod:`.cudalaunch`) and replayed between CUDA events, under
  the power protocol (:mod:`.power`): an idle gap and warm replays before each
  sample, samples under power or thermal slowdown retaken, and a back-to-back
  view.  Launch gaps do not count and inputs stay warm in L2: the kernel's
  own throughput time, the one the roofline uses and asv gates on.
* :func:`time_cuda_latency` -- one isolated call: synchronise (and flush L2,
  by default), events around the call: host dispatch + launch + a cold-cache
  kernel.

Training passes (``bwd``, ``fwd+bwd``) are timed by the same functions; only
the callable differs (built by :class:`attnperf.measure.bench.Bench`).  For
``bwd`` the forward runs once, eagerly, outside the graph, on a side stream
that the caller makes current for the whole timing, and the timed call is
``torch.autograd.grad(out, (q, k, v), dO, retain_graph=True)``: a replay
re-runs the captured backward kernels on the saved tensors of that one
forward.  ``fwd+bwd`` captures the forward and the gradient call together.
A backend whose backward cannot be captured falls back, as any kernel does,
to eager calls between events (``method`` ``cuda-events-burst``, the capture
error in ``note``); ``capture=False`` asks for that on purpose.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from ..model.samples import Samples, ThreadTime
from .budget import QUICK, Budget, keep_sampling  # noqa: F401 - public names of the timers
from .cpuclock import (  # noqa: F401
    CPU_CLOCK,
    CPU_REFERENCE_S,
    REFERENCE_N,
    cpu_reference_burst,
    fix_malloc_thresholds,
    normalise,
    sample_clocks,
)
from .cudalaunch import L2Flusher, cuda_warmup, more_captures, replay_seconds, replayable
from .power import (  # noqa: F401
    BACK_TO_BACK,
    BACK_TO_BACK_POWER,
    GAP_WARM,
    ISOLATED,
    MAX_REPLAYS,
    MAX_SETTLE_CYCLES,
    NVML_CLOCKS,
    POWER,
    PROTOCOLS,
    ClockFn,
    PowerControl,
    back_to_back,
    gap_warm_take,
    resolve_clocks,
    sample_steady,
    settle_cycles,
)


def time_cpu(fn: Callable[[], object], budget: Budget = Budget(),
             clock: Callable[[], float] = time.perf_counter) -> Samples:
    """Wall-clock samples of ``fn()`` on the host (CPU kernels)."""
    (samples,), number, warm = sample_clocks(fn, budget, (clock,))
    return Samples(samples, "cpu-perf_counter", number, warm)


def time_cpu_thread(fn: Callable[[], object], budget: Budget = Budget(),
                    reference: Callable[[], float] | None = None,
                    clock: Callable[[], float] = time.perf_counter,
                    cpu_clock: Callable[[], float] = time.thread_time,
                    fix_malloc: bool = True) -> Samples:
    """Thread CPU time of ``fn()`` per call, each sample bracketed by reference
    bursts (:mod:`attnperf.measure.cpuclock`).  Only for single-threaded
    kernels: the CPU time of other threads is not counted.  ``reference``
    (default :func:`cpu_reference_burst`), ``clock`` and ``cpu_clock`` are
    injected by tests.
    """
    note = "" if not fix_malloc or fix_malloc_thresholds() else "malloc thresholds not fixed"
    ref = reference or cpu_reference_burst(cpu_clock)
    refs: list[float] = []

    def between() -> float:
        refs.append(ref())
        return refs[-1]

    (thread, wall), number, warm = sample_clocks(fn, budget, (cpu_clock, clock), between=between)
    views = ThreadTime(wall, refs, normalise(thread, refs), CPU_CLOCK)
    return Samples(thread, "cpu-thread_time", number, warm, note=note, thread=views)


def time_cuda_device(fn: Callable[[], object], budget: Budget = Budget(),
                     graph_target_s: float = 2e-3, max_calls: int = 100,
                     power: PowerControl = POWER, clocks: ClockFn | object | None = NVML_CLOCKS,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.perf_counter,
                     capture: bool = True) -> Samples:
    """Device time per call: CUDA-graph replays timed with events, under the
    power protocol ``power`` (:mod:`attnperf.measure.power`).

    A graph holds as many calls as take about ``graph_target_s`` (at most
    ``max_calls``).  ``clocks`` reads the GPU's clock state after each sample
    (default: NVML; None: unavailable); ``sleep`` and ``clock`` are the host's
    (injected by tests).  ``capture=False``: eager calls between the events
    instead of graph replays.
    """
    import torch

    read_clock = resolve_clocks(torch, clocks)
    warm, per_call = cuda_warmup(torch, fn, budget, clock)
    calls = int(min(max_calls, max(1, math.ceil(graph_target_s / per_call))))
    launch = replayable(torch, fn, calls, capture, clock)
    method, note = launch.method, launch.note
    launch()  # one untimed replay: graph upload
    torch.cuda.synchronize()
    if power.protocol == BACK_TO_BACK:
        drawn = back_to_back(torch, launch, calls, budget, read_clock)
        return Samples(drawn.samples_s, method, calls, warm, note=note,
                       power=drawn.power_state(BACK_TO_BACK, read_clock))
    more, short = more_captures(torch, fn, calls, budget.captures - 1, launch)
    launches = [launch] + more
    if short:
        note = "; ".join(
            filter(None, [note, f"{len(launches)} of {budget.captures} captures ({short})"])
        )

    replay_s = replay_seconds(torch, launch)
    warm_replays, replays, gap = power.plan(replay_s)
    takes = [gap_warm_take(torch, each, calls, warm_replays, replays, gap, sleep)
             for each in launches]  # the captures take turns (Budget.captures)
    settle = settle_cycles(budget.settle_s, gap + (warm_replays + replays) * replay_s)
    for i in range(settle):  # untimed: a process's start-up transient passes (Budget doc)
        takes[i % len(takes)]()
    drawn = sample_steady(takes, read_clock, budget, clock)
    sustained = None
    if power.sustained:  # a view: back-to-back replays of the first capture
        sustained_budget = dataclasses.replace(budget, max_samples=budget.min_samples)
        view = back_to_back(torch, launch, calls, sustained_budget, read_clock)
        sustained = Samples(view.samples_s, method, calls, 0,
                            power=view.power_state(BACK_TO_BACK, read_clock))
    state = drawn.power_state(GAP_WARM, read_clock, gap_s=gap, warm_replays=warm_replays,
                              replays_per_sample=replays, settle_cycles=settle,
                              captures=len(launches), sustained=sustained)
    return Samples(drawn.samples_s, method, calls * replays, warm, note=note, power=state)


def time_cuda_latency(fn: Callable[[], object], budget: Budget = Budget(),
                      l2_flush: bool = True,
                      clocks: ClockFn | object | None = NVML_CLOCKS,
                      clock: Callable[[], float] = time.perf_counter) -> Samples:
    """Latency of one isolated call: synchronise, [flush L2], events around the
    call; the clock state is read after each call, slowdowns retaken as for
    device time."""
    import torch

    read_clock = resolve_clocks(torch, clocks)
    warm, _ = cuda_warmup(torch, fn, budget, clock)
    flush = L2Flusher(torch) if l2_flush else None
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]  # torch: untyped
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]

    def take() -> float:
        if flush is not None:
            flush()
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms: float = start.elapsed_time(end)
        return ms / 1e3

    drawn = sample_steady([take], read_clock, budget, clock)
    return Samples(drawn.samples_s, "cuda-events-per-call", 1, warm, l2_flush=l2_flush,
                   power=drawn.power_state(ISOLATED, read_clock))


__all__ = ["Budget", "QUICK", "PowerControl", "POWER", "BACK_TO_BACK_POWER", "GAP_WARM",
           "BACK_TO_BACK", "ISOLATED", "PROTOCOLS", "MAX_REPLAYS", "MAX_SETTLE_CYCLES",
           "CPU_CLOCK", "CPU_REFERENCE_S", "ClockFn", "L2Flusher", "Samples",
           "cpu_reference_burst", "fix_malloc_thresholds", "settle_cycles",
           "time_cpu", "time_cpu_thread", "time_cuda_device", "time_cuda_latency"]
