"""CUDA launch mechanics: how ``calls`` calls of a kernel become one timed launch.

* :func:`replayable` captures the calls into a CUDA graph, so a replay runs
  them back to back with no launch gaps.  A first capture can fail where a
  library does lazy set-up (a plan, a workspace) inside it; the second finds
  it done, so capture is tried twice.  A kernel that cannot be captured (or
  ``capture=False``) gets an eager burst of the calls instead.
* An eager burst is queued behind a spin kernel (:meth:`Launch.ahead`): the
  host enqueues the whole burst while the spin holds the stream, so events
  time the device running the calls back to back, not the host launching
  them (a small backward through autograd enqueues slower than the GPU runs
  it).
* Graphs are captured on the current stream unless it is the default stream
  (which cannot capture).  A backward runs each op on the stream of its
  forward op, so a ``bwd`` timing makes its forward's side stream current and
  the backward is captured there.
* :func:`more_captures` makes further graphs of the same calls
  (:attr:`~attnperf.measure.budget.Budget.captures`).

Everything here takes the ``torch`` module as an argument so that tests can
drive it with a fake CUDA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .budget import Budget

# Extra spin before a queued eager burst (covers the event record and the first launch).
SPIN_MARGIN_S = 50e-6
# The torch module, or a test's fake of the torch.cuda calls used here.
TorchLike = Any
GRAPH = "cuda-graph"
BURST = "cuda-events-burst"


def cuda_warmup(torch: TorchLike, fn: Callable[[], object], budget: Budget,
                clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Run ``fn`` until ``warmup_s`` of device work is done; return (calls, per-call
    device seconds, from a short event-timed burst)."""
    calls = 0
    start = clock()
    torch.cuda.synchronize()
    while calls < 3 or clock() - start < budget.warmup_s:
        fn()
        calls += 1
        if calls % 8 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(5):
        fn()
    e1.record()
    e1.synchronize()
    return calls + 5, max(e0.elapsed_time(e1) / 5e3, 1e-7)


def capture_graph(torch: TorchLike, fn: Callable[[], object], calls: int) -> Any:
    """A CUDA graph of ``calls`` calls of ``fn``, captured on the current stream
    unless that is the default one (the module doc says why)."""
    current = torch.cuda.current_stream()
    stream = None if current == torch.cuda.default_stream() else current
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # capture needs the lazy init done on a side stream
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(calls):
            fn()
    torch.cuda.synchronize()
    return graph


class Launch:
    """``calls`` calls of the kernel, ready to time: a CUDA-graph replay, or (when the
    kernel cannot be captured, or capture is off) an eager burst of the calls.

    ``ahead(n)`` is called right before the start event of ``n`` launches.  For a
    burst it queues a spin kernel (``torch.cuda._sleep``) long enough for the
    host to enqueue the ``n`` bursts behind it; for a graph it does nothing."""

    def __init__(self, run: Callable[[], object], method: str, note: str, host_s: float = 0.0,
                 spin: Callable[[float], object] | None = None) -> None:
        self.run, self.method, self.note = run, method, note
        self._host_s, self._spin = host_s, spin

    def __call__(self) -> None:
        self.run()

    def ahead(self, n: int) -> None:
        if self._spin is not None:
            self._spin(2.0 * self._host_s * n + SPIN_MARGIN_S)


def spinner(torch: TorchLike) -> Callable[[float], None]:
    """spin(seconds): queue a kernel that keeps the stream busy that long
    (``torch.cuda._sleep`` counts SM cycles; the rate is measured here once)."""
    probe = 1_000_000
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(probe)  # untimed: brings the clock up before the rate is taken
    e0.record()
    torch.cuda._sleep(probe)
    e1.record()
    e1.synchronize()
    per_second = probe / max(e0.elapsed_time(e1) / 1e3, 1e-9)
    return lambda seconds: torch.cuda._sleep(max(1, int(seconds * per_second)))


def replayable(torch: TorchLike, fn: Callable[[], object], calls: int, capture: bool = True,
               clock: Callable[[], float] = time.perf_counter) -> Launch:
    """``calls`` calls as one launch: a graph replay, else a queued eager burst
    (its ``note`` says why)."""
    def burst() -> None:
        for _ in range(calls):
            fn()

    def eager(note: str) -> Launch:
        torch.cuda.synchronize()
        t0 = clock()
        burst()  # untimed: what enqueuing one burst costs the host
        host_s = clock() - t0
        torch.cuda.synchronize()
        return Launch(burst, BURST, note, host_s, spinner(torch))

    if not capture:
        return eager("graph capture off (eager calls queued behind a spin kernel)")
    first: str | None = None
    for _ in range(2):  # the second try finds a library's lazy set-up done
        try:
            graph = capture_graph(torch, fn, calls)
            return Launch(graph.replay, GRAPH,
                          "" if first is None else f"captured at the second try (first: {first})")
        except RuntimeError as exc:  # some kernels cannot be captured
            torch.cuda.synchronize()
            first = first or str(exc).splitlines()[0]
    return eager(f"graph capture failed: {first}")


def more_captures(torch: TorchLike, fn: Callable[[], object], calls: int, count: int,
                  first: Launch) -> tuple[list[Launch], str]:
    """``count`` more graphs of the same calls, each uploaded by one untimed replay,
    and why there are fewer ("" when none is missing): none when ``first`` is
    not a graph replay (an eager burst has no capture to vary), those made so
    far when a later capture fails (out of memory, say)."""
    more: list[Launch] = []
    if count <= 0:
        return more, ""
    if first.method != GRAPH:
        return more, "eager calls: no graph to capture again"
    for _ in range(count):
        try:
            graph = capture_graph(torch, fn, calls)
        except RuntimeError as exc:  # the samples take turns over the graphs captured so far
            torch.cuda.synchronize()
            return more, f"the next capture failed: {str(exc).splitlines()[0]}"
        graph.replay()
        torch.cuda.synchronize()
        more.append(Launch(graph.replay, GRAPH, ""))
    return more, ""


def replay_seconds(torch: TorchLike, launch: Launch, replays: int = 3) -> float:
    """Device time of one launch, from ``replays`` back-to-back launches."""
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    launch.ahead(replays)
    e0.record()
    for _ in range(replays):
        launch()
    e1.record()
    e1.synchronize()
    seconds: float = max(e0.elapsed_time(e1) / 1e3 / replays, 1e-9)
    return seconds


class L2Flusher:
    """Evicts the GPU's L2 by writing a buffer twice its size."""

    def __init__(self, torch: TorchLike, device: int | None = None) -> None:
        props = torch.cuda.get_device_properties(device or torch.cuda.current_device())
        l2 = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
        self._buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device="cuda")

    def __call__(self) -> None:
        self._buf.zero_()
