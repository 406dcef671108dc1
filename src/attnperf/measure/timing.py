"""THE timing code of attnperf.  The CLI and the asv suite both time through here.

CPU: ``time.perf_counter`` around ``number`` back-to-back calls per sample
(``number`` chosen so a sample lasts ~2 ms), after a warm-up; samples are drawn
until the spread is small or the time budget is spent.

GPU, two labelled numbers, never a host timer without synchronisation:

* **device time** -- a CUDA graph of ``n`` back-to-back calls is captured and
  replayed; CUDA events between consecutive replays (enqueued back to back, so
  the GPU never waits for the host) give one sample per replay, divided by
  ``n``.  Launch gaps do not count; inputs stay warm in L2.  This is the
  kernel's own throughput time, the one the roofline uses.
* **latency** -- the device is synchronised (and L2 flushed, by default),
  then CUDA events around one call: host dispatch + launch + a cold-cache
  kernel, what one isolated call costs.

Raw samples are always kept; statistics are median, IQR, mean, std, min.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, List

from ..model.records import Samples, iqr_ratio

@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to spend on one measurement.

    ``min_samples`` are always taken; sampling then stops as soon as the spread
    (IQR/median) is below ``stable_ratio``, or ``budget_s`` of timed work is
    spent, or ``max_samples`` are in.
    """

    min_samples: int = 10
    max_samples: int = 100
    budget_s: float = 0.5
    warmup_s: float = 0.05
    target_sample_s: float = 2e-3
    stable_ratio: float = 0.03


QUICK = Budget(min_samples=6, max_samples=30, budget_s=0.15, warmup_s=0.02)


def _stable(samples: List[float], budget: Budget) -> bool:
    if len(samples) < budget.min_samples:
        return False
    return iqr_ratio(samples) < budget.stable_ratio


def _keep_sampling(samples: List[float], spent_s: float, budget: Budget) -> bool:
    if len(samples) < budget.min_samples:
        return True
    if len(samples) >= budget.max_samples or spent_s >= budget.budget_s:
        return False
    return not _stable(samples, budget)


# ---------------------------------------------------------------- CPU -------
def time_cpu(fn: Callable[[], object], budget: Budget = Budget(),
             clock: Callable[[], float] = time.perf_counter) -> Samples:
    """Wall-clock samples of ``fn()`` on the host (CPU kernels)."""
    warm, t0 = 0, clock()
    while warm < 2 or clock() - t0 < budget.warmup_s:
        fn()
        warm += 1
    per_call = max((clock() - t0) / warm, 1e-9)
    number = max(1, int(budget.target_sample_s / per_call))
    samples: List[float] = []
    spent = 0.0
    while _keep_sampling(samples, spent, budget):
        start = clock()
        for _ in range(number):
            fn()
        elapsed = clock() - start
        spent += elapsed
        samples.append(elapsed / number)
    return Samples(samples, "cpu-perf_counter", number, warm)


# ---------------------------------------------------------------- GPU -------
def _cuda_warmup(torch, fn, budget: Budget) -> tuple:
    """Run until ``warmup_s`` of device work is done; return (calls, per-call s)."""
    calls = 0
    start = time.perf_counter()
    torch.cuda.synchronize()
    while calls < 3 or time.perf_counter() - start < budget.warmup_s:
        fn()
        calls += 1
        if calls % 8 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    # Estimate one call's device time with a short event-timed burst.
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(5):
        fn()
    e1.record()
    e1.synchronize()
    return calls + 5, max(e0.elapsed_time(e1) / 5e3, 1e-7)


def _capture_graph(torch, fn, calls: int):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # capture needs the lazy init done on a side stream
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    torch.cuda.synchronize()
    return graph


def time_cuda_device(fn: Callable[[], object], budget: Budget = Budget(),
                     graph_target_s: float = 2e-3, max_calls: int = 100) -> Samples:
    """Device time per call: CUDA-graph replays timed with events (see module doc)."""
    import torch

    warm, per_call = _cuda_warmup(torch, fn, budget)
    calls = int(min(max_calls, max(1, math.ceil(graph_target_s / per_call))))
    method, note = "cuda-graph", ""
    try:
        graph = _capture_graph(torch, fn, calls)
        launch = graph.replay
    except RuntimeError as exc:  # some kernels cannot be captured
        torch.cuda.synchronize()
        method, note = "cuda-events-burst", f"graph capture failed: {str(exc).splitlines()[0]}"

        def launch():
            for _ in range(calls):
                fn()
    launch()  # one untimed replay: graph upload
    torch.cuda.synchronize()
    samples: List[float] = []
    spent = 0.0
    while _keep_sampling(samples, spent, budget):
        # Enqueue a batch of replays back to back with an event between each.
        batch = max(1, min(budget.max_samples - len(samples),
                           budget.min_samples if not samples else 8))
        events = [torch.cuda.Event(enable_timing=True) for _ in range(batch + 1)]
        events[0].record()
        for i in range(batch):
            launch()
            events[i + 1].record()
        events[-1].synchronize()
        for a, b in zip(events, events[1:]):
            seconds = a.elapsed_time(b) / 1e3
            spent += seconds
            samples.append(seconds / calls)
    return Samples(samples, method, calls, warm, note=note)


class L2Flusher:
    """Evicts the GPU's L2 by writing a buffer twice its size."""

    def __init__(self, torch, device=None) -> None:
        props = torch.cuda.get_device_properties(device or torch.cuda.current_device())
        l2 = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
        self._buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device="cuda")

    def __call__(self) -> None:
        self._buf.zero_()


def time_cuda_latency(fn: Callable[[], object], budget: Budget = Budget(),
                      l2_flush: bool = True) -> Samples:
    """Latency of one isolated call: synchronise, [flush L2], events around the call."""
    import torch

    warm, _ = _cuda_warmup(torch, fn, budget)
    flush = L2Flusher(torch) if l2_flush else None
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: List[float] = []
    spent = 0.0
    while _keep_sampling(samples, spent, budget):
        if flush is not None:
            flush()
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3
        spent += seconds
        samples.append(seconds)
    return Samples(samples, "cuda-events-per-call", 1, warm, l2_flush=l2_flush)
