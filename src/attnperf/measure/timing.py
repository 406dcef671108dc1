"""THE timing code of attnperf.  The CLI and the asv suite both time through here.

CPU, single-threaded (the suite's and ``attnperf run``'s default, 1 PyTorch
thread; :func:`time_cpu_thread`): ``number`` back-to-back calls per sample
(~2 ms), after a warm-up, each sample read with two clocks:

* the measuring thread's **CPU time** (``time.thread_time``,
  ``CLOCK_THREAD_CPUTIME_ID``): time the thread was descheduled -- another job
  on the core -- does not count.  At 1 thread PyTorch runs the kernel on the
  calling thread (process CPU time / thread CPU time measured 1.00-1.01 for
  every CPU combination of the grid), so this is all the work.  ``samples_s``.
* **wall time** (``perf_counter``): kept as ``wall_s``, a view.

A vCPU of a shared host also runs *slower* at times (measured here: the same
fixed matmul took 0.8 ms of thread CPU time unloaded and 1.6 ms, median, with
the host busy).  Every sample is therefore bracketed by a fixed **reference
burst** (two 256x256 float32 matmuls after an untimed one,
:func:`cpu_reference_burst`), kept as ``reference_s``, and ``normalised_s`` =
thread time x :data:`CPU_REFERENCE_S` / (mean of the two bursts around the
sample).  It is recorded, NOT gated: it halved the A/A spread under load, but
it also shrank a real 1.23-1.39x thread-time ratio to 1.15-1.28x (a bias not
yet explained; see the README's calibrate section).  glibc's malloc
thresholds are fixed once per process (:func:`fix_malloc_thresholds`): with
its adaptive defaults a kernel that allocates ~16 MB per call paid ~4000 page
faults per call in some processes and none in others (5.4 ms vs 18-22 ms
thread time for the same code).

CPU otherwise (several threads, ceilings): :func:`time_cpu`, ``perf_counter``
around the calls (the CPU time of one thread would miss the others' work).

GPU, labelled numbers, never a host timer without synchronisation:

* **device time** -- a CUDA graph of ``n`` back-to-back calls is captured and
  replayed; CUDA events around replays give the time per call (divided by the
  calls timed).  Launch gaps do not count; inputs stay warm in L2.  This is the
  kernel's own throughput time, the one the roofline uses and asv gates on.

  Its power state is controlled by idling (:class:`PowerControl`, protocol
  ``gap-warm``).  Replays back to back hold an H100 at its power cap, where
  the SM clock wanders and a compute-bound median moved 7-11 % between rounds
  (../shared/FACTS.md, "Power state").  So each sample is: synchronise; the
  host sleeps ``gap`` (the GPU idles and its clocks recover); ``warm``
  untimed replays are queued, and right behind them the timed replays between
  two events -- the warm replays bring the clock back up from idle, and the
  timed ones follow with no host gap.  Every sample lasts at least
  ``sample_s`` (several replays when one replay is short: after an idle gap a
  140 us sample was dominated by the clock ramp) and the warm part at least
  ``warm_s``.  The gap scales with the work it follows, ``gap_ratio`` x
  (warm + timed), clamped to [``gap_min_s``, ``gap_max_s``], so the duty cycle
  -- what a power controller averages -- stays at or below 1/(1 + ratio)
  for short and long problems alike.  The gap is never a change of clocks or
  power settings: attnperf only idles.

  After each sample the SM clock and the clock-event reasons are read (NVML).
  A sample seen under power or thermal slowdown (sw_power_cap, hw_slowdown,
  sw_thermal, hw_thermal, hw_power_brake) that is also slow (2 % over the
  median so far: an H100 at its power cap reports sw_power_cap after nearly
  every large sample that is nonetheless on time) is set aside and retaken, at most
  ``Budget.retake_fraction`` x ``max_samples`` extra samples; when that does
  not buy ``min_samples`` steady ones, every sample is kept and the result is
  marked unsteady with the reasons.  Without NVML the clock fields say
  "unavailable" and nothing is retaken.

  A short **sustained** figure follows: replays back to back (the protocol
  before power-state control), labelled ``back-to-back``; a view, never gated.
* **latency** -- the device is synchronised (and L2 flushed, by default),
  then CUDA events around one call: host dispatch + launch + a cold-cache
  kernel, what one isolated call costs.

Training passes (``bwd``, ``fwd+bwd``) are timed by the same functions; only
the callable differs (built by :class:`attnperf.measure.session.Bench`):

* ``bwd`` -- Q, K, V require grad; the forward runs **once, eagerly, outside
  the graph**, on a side stream ``S`` that the caller makes current for the
  whole timing; the timed call is ``torch.autograd.grad(out, (q, k, v), dO,
  retain_graph=True)``.  Autograd runs each backward op on the stream of its
  forward op, so the graph must be captured on ``S``: :func:`_capture_graph`
  captures on the current stream whenever that is not the default stream
  (the forward pass keeps the default stream and is captured as before).
  A replay re-runs the captured backward kernels on the saved tensors of
  that one forward; ``retain_graph`` keeps them for every warm-up, captured
  and eager call.
* ``fwd+bwd`` -- the forward and the gradient call together, captured as one
  callable (no retained graph).

Everything else -- warm-up, calls per graph, idle gap, warm replays, events,
retakes, the sustained view, the isolated latency -- is the forward's.  A
backend whose backward cannot be captured falls back, as any kernel does, to
eager calls between events (``method`` ``cuda-events-burst``, the capture
error in ``note``); ``capture=False`` asks for that protocol on purpose (the
GPU check compares the two).  CPU: ``time.perf_counter`` around the same
callables.

Raw samples are always kept; statistics are median, IQR, mean, std, min.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, List, Optional, Sequence, Tuple

from ..model.records import UNAVAILABLE, ClockReading, Samples, iqr_ratio, slowdown_summary
from . import nvml


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to spend on one measurement.

    ``min_samples`` are always taken; sampling then stops as soon as the spread
    (IQR/median) is below ``stable_ratio``, or ``budget_s`` is spent (timed
    work on a CPU; on a GPU the wall time of each sample, idle gap included),
    or ``max_samples`` are in.  GPU samples taken under power or thermal
    slowdown are retaken, at most ``ceil(retake_fraction * max_samples)``
    extra samples.  ``settle_s`` (GPU, gap-warm): before each timing's samples,
    untimed cycles of the sample protocol (gap, warm, replays) run for about this
    long (at least one cycle) -- on the H100 the first 0-7 samples of a fresh
    `attnperf run` (~70 ms) read cuDNN SDPA at 4,16,2048,128 ~2.5 % slower, NVML
    showing 1980 MHz and no slowdown reason, and with 10 samples that transient
    set one of five process medians.  The asv suite's budgets use 0.
    ``captures`` (GPU, gap-warm, graph replays): the calls are captured into this
    many CUDA graphs and the samples take turns over them (settling cycles too).  On
    the H100 the flash and memory-efficient SDPA training passes at 4,16,2048,128
    bf16 read 391 or 394-401 us (flash), 798 or 806-818 us (efficient) from one
    capture to the next within a process, cuDNN and a plain matmul steady beside
    them: with one capture a whole timing lands in one of those states.  Several
    captures spread its samples over as many (whole turns, within ``max_samples``);
    the median comes from the pooled samples, a sample is judged slow for a retake
    against its own capture's samples and retaken from it, and a capture that fails
    leaves fewer (said in the note).  Graph memory is that of K captures while the
    timing runs.  Default 1 (the protocol every recorded figure used).
    """

    min_samples: int = 10
    max_samples: int = 100
    budget_s: float = 0.5
    warmup_s: float = 0.05
    target_sample_s: float = 2e-3
    stable_ratio: float = 0.03
    retake_fraction: float = 0.5
    # A flagged sample is retaken only when it is also this much slower than the
    # median of the samples drawn so far (None: every flagged sample is retaken).
    slow_margin: Optional[float] = 0.02
    settle_s: float = 0.1
    captures: int = 1

    def __post_init__(self) -> None:
        if self.captures < 1:
            raise ValueError(f"captures must be >= 1, got {self.captures}")


QUICK = Budget(min_samples=6, max_samples=30, budget_s=0.15, warmup_s=0.02)


def _keep_sampling(samples: List[float], spent_s: float, budget: Budget) -> bool:
    if len(samples) < budget.min_samples:
        return True
    if len(samples) >= budget.max_samples or spent_s >= budget.budget_s:
        return False
    return iqr_ratio(samples) >= budget.stable_ratio  # not yet stable


# ---------------------------------------------------------------- CPU -------
def _cpu_samples(fn: Callable[[], object], budget: Budget,
                 clocks: Sequence[Callable[[], float]],
                 between: Optional[Callable[[], float]] = None):
    """THE CPU sampling loop: warm up, choose the calls per sample, sample until the
    budget says stop.  ``clocks[0]`` paces warm-up and budget; every clock is read
    around each sample (nested: first clock innermost).  ``between()`` runs once
    before the first sample and after every sample, returning seconds the budget
    also counts (all but the first run).
    Returns (per-call times per clock, calls per sample, warm-up calls)."""
    pace = clocks[0]
    warm, t0 = 0, pace()
    while warm < 2 or pace() - t0 < budget.warmup_s:
        fn()
        warm += 1
    per_call = max((pace() - t0) / warm, 1e-9)
    number = max(1, int(budget.target_sample_s / per_call))
    times: List[List[float]] = [[] for _ in clocks]
    spent = 0.0
    if between:
        between()
    while _keep_sampling(times[0], spent, budget):
        start = [c() for c in reversed(clocks)][::-1]
        for _ in range(number):
            fn()
        end = [c() for c in clocks]
        for series, a, b in zip(times, start, end):
            series.append((b - a) / number)
        spent += end[0] - start[0] + (between() if between else 0.0)
    return times, number, warm


def time_cpu(fn: Callable[[], object], budget: Budget = Budget(),
             clock: Callable[[], float] = time.perf_counter) -> Samples:
    """Wall-clock samples of ``fn()`` on the host (CPU kernels)."""
    (samples,), number, warm = _cpu_samples(fn, budget, (clock,))
    return Samples(samples, "cpu-perf_counter", number, warm)


# The reference burst's thread CPU time on the project's CPU machine kind (2-core
# AMD EPYC, torch 2.13, 1 thread, median 0.78-0.83 ms unloaded): normalised_s is in
# seconds at that speed.  Changing it rescales every recorded normalised figure.
CPU_REFERENCE_S = 0.8e-3
REFERENCE_N = 256
CPU_CLOCK = "thread"  # what the gated CPU figure is (the asv entry's cpu_clock)


def fix_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds (1 GiB) for this process, so a
    kernel's large temporaries are reused from the heap instead of being
    mapped, faulted in and returned per call -- which glibc's adaptive
    defaults did in some processes and not in others.  False where there is
    no glibc ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


def cpu_reference_burst(cpu_clock: Callable[[], float] = time.thread_time) -> Callable[[], float]:
    """A fixed piece of work (two 256x256 float32 matmuls on this thread) that
    returns its own thread CPU seconds: how fast the CPU runs right now."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(REFERENCE_N, REFERENCE_N, generator=gen) for _ in range(2))
    out = torch.empty(REFERENCE_N, REFERENCE_N)

    def burst() -> float:
        # One untimed matmul first: right after a kernel's sample the operands are
        # out of cache, and a cold burst ran slower after longer samples -- which
        # shrank a real 1.25x thread-time ratio to 1.17-1.20 once normalised.
        torch.mm(a, b, out=out)
        t0 = cpu_clock()
        torch.mm(a, b, out=out)
        torch.mm(a, b, out=out)
        return cpu_clock() - t0

    for _ in range(3):
        burst()
    return burst


def time_cpu_thread(fn: Callable[[], object], budget: Budget = Budget(),
                    reference: Optional[Callable[[], float]] = None,
                    clock: Callable[[], float] = time.perf_counter,
                    cpu_clock: Callable[[], float] = time.thread_time,
                    fix_malloc: bool = True) -> Samples:
    """Thread CPU time of ``fn()`` per call, each sample bracketed by reference
    bursts (module doc).  Only for single-threaded kernels: the CPU time of
    other threads is not counted.  ``reference`` (default
    :func:`cpu_reference_burst`), ``clock`` and ``cpu_clock`` are injected by tests.
    """
    note = "" if not fix_malloc or fix_malloc_thresholds() else "malloc thresholds not fixed"
    ref = reference or cpu_reference_burst(cpu_clock)
    refs: List[float] = []
    (thread, wall), number, warm = _cpu_samples(
        fn, budget, (cpu_clock, clock), between=lambda: refs.append(ref()) or refs[-1])
    normalised = [t * CPU_REFERENCE_S / max((a + b) / 2, 1e-12)
                  for t, a, b in zip(thread, refs, refs[1:])]
    return Samples(thread, "cpu-thread_time", number, warm, cpu_clock=CPU_CLOCK, wall_s=wall,
                   reference_s=refs, normalised_s=normalised, note=note)


# ---------------------------------------------------------------- GPU -------
GAP_WARM = "gap-warm"
BACK_TO_BACK = "back-to-back"
ISOLATED = "isolated"
PROTOCOLS = (GAP_WARM, BACK_TO_BACK)
MAX_REPLAYS = 1000  # per part of a sample (warm, timed): bounds a degenerate replay length


@dataclasses.dataclass(frozen=True)
class PowerControl:
    """How each device-time sample controls the GPU's power state (module doc).

    The defaults reproduce what was measured steadiest on the lent H100 for
    ~2 ms CUDA graphs (FACTS.md, "Idle gap + one warm replay": 5 ms gap, one
    untimed replay, then the timed one): a 2 ms warm part and a 2 ms timed
    part give a 5 ms gap at ratio 1.25.
    """

    protocol: str = GAP_WARM
    gap_ratio: float = 1.25
    gap_min_s: float = 1e-3
    gap_max_s: float = 20e-3
    warm_s: float = 2e-3
    sample_s: float = 2e-3
    sustained: bool = True  # also take budget.min_samples back-to-back samples (a view)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown power protocol {self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        for name in ("gap_ratio", "gap_min_s", "gap_max_s", "warm_s", "sample_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"PowerControl.{name} must be a finite number >= 0, not {value!r}")
        if self.gap_min_s > self.gap_max_s:
            raise ValueError(f"PowerControl.gap_min_s ({self.gap_min_s}) is above "
                             f"gap_max_s ({self.gap_max_s})")

    def plan(self, replay_s: float) -> Tuple[int, int, float]:
        """(warm replays, timed replays, gap seconds) for a replay of ``replay_s``."""
        def replays(seconds: float) -> int:
            # 1e-9: 2 ms / 1 ms must be 2 replays, not 3 through rounding.
            return int(min(MAX_REPLAYS, max(1, math.ceil(seconds / replay_s - 1e-9))))

        warm, timed = replays(self.warm_s), replays(self.sample_s)
        gap = min(self.gap_max_s, max(self.gap_min_s, self.gap_ratio * (warm + timed) * replay_s))
        return warm, timed, gap


POWER = PowerControl()
BACK_TO_BACK_POWER = PowerControl(protocol=BACK_TO_BACK, sustained=False)

ClockFn = Callable[[], Optional[ClockReading]]
_NVML = object()  # default for ``clocks``: NVML for torch's current GPU


def _nvml_clocks(torch) -> Optional[ClockFn]:
    index = torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return nvml.clock_reader(str(uuid) if uuid else None, index)


def _resolve_clocks(torch, clocks) -> Optional[ClockFn]:
    return _nvml_clocks(torch) if clocks is _NVML else clocks


def _cuda_warmup(torch, fn, budget: Budget, clock: Callable[[], float] = time.perf_counter) -> tuple:
    """Run until ``warmup_s`` of device work is done; return (calls, per-call s)."""
    calls = 0
    start = clock()
    torch.cuda.synchronize()
    while calls < 3 or clock() - start < budget.warmup_s:
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
    # On the current stream unless it is the default one (which cannot capture):
    # a backward runs where its forward ran, and Bench made that stream current.
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


class _Launch:
    """``calls`` calls of the kernel, ready to time: a CUDA-graph replay, or (when the
    kernel cannot be captured, or capture is off) an eager burst of the calls.

    ``ahead(n)`` is called right before the start event of ``n`` launches.  For a
    burst it queues a spin kernel (``torch.cuda._sleep``) long enough for the
    host to enqueue the ``n`` bursts behind it, so the events time the device
    running the calls back to back -- not the host launching them (a small
    backward through autograd enqueues slower than the GPU runs it: such
    bursts read 2-10x the device time).  For a graph it does nothing."""

    def __init__(self, run, method: str, note: str, host_s: float = 0.0, spin=None) -> None:
        self.run, self.method, self.note = run, method, note
        self._host_s, self._spin = host_s, spin

    def __call__(self) -> None:
        self.run()

    def ahead(self, n: int) -> None:
        if self._spin is not None:
            self._spin(2.0 * self._host_s * n + SPIN_MARGIN_S)


# Extra spin before a queued eager burst (covers the event record and the first launch).
SPIN_MARGIN_S = 50e-6


def _spinner(torch):
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


def _replayable(torch, fn, calls: int, capture: bool = True,
                clock: Callable[[], float] = time.perf_counter) -> _Launch:
    """``calls`` calls as one launch: a graph replay, else a queued eager burst."""
    def burst():
        for _ in range(calls):
            fn()

    def eager(note: str) -> _Launch:
        torch.cuda.synchronize()
        t0 = clock()
        burst()  # untimed: what enqueuing one burst costs the host
        host_s = clock() - t0
        torch.cuda.synchronize()
        return _Launch(burst, "cuda-events-burst", note, host_s, _spinner(torch))

    if not capture:
        return eager("graph capture off (eager calls queued behind a spin kernel)")
    first = None
    for _ in range(2):  # a first capture can fail where lazy set-up (a library's plan or
        try:            # workspace) happens inside it; the second finds it done
            graph = _capture_graph(torch, fn, calls)
            return _Launch(graph.replay, "cuda-graph",
                           "" if first is None else f"captured at the second try (first: {first})")
        except RuntimeError as exc:  # some kernels cannot be captured
            torch.cuda.synchronize()
            first = first or str(exc).splitlines()[0]
    return eager(f"graph capture failed: {first}")


def _replay_seconds(torch, launch, replays: int = 3) -> float:
    """Device time of one replay, from ``replays`` back-to-back replays."""
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    launch.ahead(replays)
    e0.record()
    for _ in range(replays):
        launch()
    e1.record()
    e1.synchronize()
    return max(e0.elapsed_time(e1) / 1e3 / replays, 1e-9)


@dataclasses.dataclass
class _Drawn:
    """What a sampling loop produced (see :func:`_sample_steady`)."""

    samples_s: List[float]
    clocks: List[Optional[ClockReading]]
    rejected_s: List[float] = dataclasses.field(default_factory=list)
    rejected_clocks: List[Optional[ClockReading]] = dataclasses.field(default_factory=list)
    retaken: int = 0
    unsteady_reason: str = ""


# A sample flagged with a slowdown reason is retaken only when it is also slow
# (``Budget.slow_margin`` above the median of the samples drawn so far).  On the
# H100 at 4,16,2048,128 bf16 NVML reports sw_power_cap right after almost every
# ~2 ms sample, yet those samples agree to 0.2 % round to round (power-state
# check, 2026-11-25): the bit alone says the GPU is at its cap, not that the
# sample is off.
def _slow(seconds: float, taken: List[Tuple[float, Optional[ClockReading]]],
          margin: Optional[float]) -> bool:
    if margin is None:
        return True
    xs = sorted(x for x, _ in taken)
    return len(xs) >= 3 and seconds > (1.0 + margin) * xs[len(xs) // 2]


def _sample_steady(takes: Sequence[Callable[[], float]], read_clock: Optional[ClockFn],
                   budget: Budget, clock: Callable[[], float] = time.perf_counter) -> _Drawn:
    """Draw samples until the budget says stop, the callables in ``takes`` taking
    turns (one per graph capture, ``Budget.captures``; usually one), retaking those
    seen under power or thermal slowdown that are also slow (``Budget.slow_margin``).

    Such a sample is set aside and another is drawn from the same callable, up to
    ``ceil(retake_fraction * max_samples)`` times; the next flagged sample ends
    the sampling.  Fewer than ``min_samples`` steady samples then means
    unsteady: every sample drawn is kept, in order, with the reasons.
    ``spent`` is the wall time of the kept samples, idle gaps included, so the
    budget bounds what the suite really costs.  A sample is judged slow against
    its own callable's samples (a capture in a slower state is not retaken for
    it), and sampling goes on to a whole number of turns (within ``max_samples``).
    """
    kept: List[float] = []
    kept_clocks: List[Optional[ClockReading]] = []
    taken: List[Tuple[float, Optional[ClockReading]]] = []
    own: List[List[Tuple[float, Optional[ClockReading]]]] = [[] for _ in takes]
    rejected: List[Tuple[float, Optional[ClockReading]]] = []
    max_retakes = math.ceil(budget.retake_fraction * budget.max_samples)
    spent, turn = 0.0, 0
    while _keep_sampling(kept, spent, budget) or 0 < turn and len(kept) < budget.max_samples:
        t0 = clock()
        seconds = takes[turn]()
        cost = clock() - t0
        reading = read_clock() if read_clock is not None else None
        taken.append((seconds, reading))
        own[turn].append((seconds, reading))
        if reading is not None and reading.slowdown_bits and _slow(seconds, own[turn], budget.slow_margin):
            rejected.append((seconds, reading))
            if len(rejected) > max_retakes:
                break
            continue
        spent += cost
        kept.append(seconds)
        kept_clocks.append(reading)
        turn = (turn + 1) % len(takes)
    if len(kept) >= budget.min_samples or not rejected:
        return _Drawn(kept, kept_clocks, [x for x, _ in rejected], [c for _, c in rejected],
                      retaken=len(rejected))
    # The retake budget is spent: keep everything (the figure is what the GPU
    # did) and say why it cannot be trusted like a steady one.
    clocks = [c for _, c in taken]
    reason = (f"{slowdown_summary(clocks)}; {len(kept)} steady of {budget.min_samples} "
              f"samples needed after {max_retakes} retakes")
    return _Drawn([x for x, _ in taken], clocks, retaken=len(rejected), unsteady_reason=reason)


def _back_to_back(torch, launch, calls: int, budget: Budget,
                  read_clock: Optional[ClockFn]) -> _Drawn:
    """Replays enqueued back to back with an event between each: one sample
    per replay; the clock is read once per batch (the protocol before
    power-state control; nothing is retaken)."""
    samples: List[float] = []
    clocks: List[Optional[ClockReading]] = []
    spent = 0.0
    while _keep_sampling(samples, spent, budget):
        batch = max(1, min(budget.max_samples - len(samples),
                           budget.min_samples if not samples else 8))
        events = [torch.cuda.Event(enable_timing=True) for _ in range(batch + 1)]
        launch.ahead(batch)
        events[0].record()
        for i in range(batch):
            launch()
            events[i + 1].record()
        events[-1].synchronize()
        reading = read_clock() if read_clock is not None else None
        for a, b in zip(events, events[1:]):
            seconds = a.elapsed_time(b) / 1e3
            spent += seconds
            samples.append(seconds / calls)
            clocks.append(reading)
    return _Drawn(samples, clocks)


MAX_SETTLE_CYCLES = 100


def settle_cycles(settle_s: float, cycle_s: float) -> int:
    """Untimed protocol cycles that last about ``settle_s`` (cycle: gap + warm + timed
    replays), at most :data:`MAX_SETTLE_CYCLES`; 0 when ``settle_s`` is 0."""
    if settle_s <= 0:
        return 0
    return int(min(MAX_SETTLE_CYCLES, max(1, math.ceil(settle_s / max(cycle_s, 1e-6)))))


def _gpu_samples(drawn: _Drawn, method: str, calls_per_sample: int, warm: int,
                 read_clock: Optional[ClockFn], **fields) -> Samples:
    return Samples(drawn.samples_s, method, calls_per_sample, warm,
                   clock_source="nvml" if read_clock is not None else UNAVAILABLE,
                   clocks=drawn.clocks, rejected_s=drawn.rejected_s,
                   rejected_clocks=drawn.rejected_clocks, retaken=drawn.retaken,
                   unsteady_reason=drawn.unsteady_reason, **fields)


def time_cuda_device(fn: Callable[[], object], budget: Budget = Budget(),
                     graph_target_s: float = 2e-3, max_calls: int = 100,
                     power: PowerControl = POWER, clocks=_NVML,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.perf_counter,
                     capture: bool = True) -> Samples:
    """Device time per call: CUDA-graph replays timed with events, under the
    power protocol ``power`` (module doc).

    ``clocks`` reads the GPU's clock state after each sample (default: NVML;
    None: unavailable); ``sleep`` and ``clock`` are the host's (injected by tests).
    ``capture=False``: eager calls between the events instead of graph replays.
    """
    import torch

    read_clock = _resolve_clocks(torch, clocks)
    warm, per_call = _cuda_warmup(torch, fn, budget, clock)
    calls = int(min(max_calls, max(1, math.ceil(graph_target_s / per_call))))
    launch = _replayable(torch, fn, calls, capture, clock)
    method, note = launch.method, launch.note
    launch()  # one untimed replay: graph upload
    torch.cuda.synchronize()
    if power.protocol == BACK_TO_BACK:
        drawn = _back_to_back(torch, launch, calls, budget, read_clock)
        return _gpu_samples(drawn, method, calls, warm, read_clock, note=note,
                            protocol=BACK_TO_BACK)
    more, short = _more_captures(torch, fn, calls, budget.captures - 1, launch)
    launches = [launch] + more
    if short:
        note = "; ".join(filter(None, [note, f"{len(launches)} of {budget.captures} captures ({short})"]))

    replay_s = _replay_seconds(torch, launch)
    warm_replays, replays, gap = power.plan(replay_s)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def sample(current: _Launch) -> Callable[[], float]:
        def take() -> float:
            torch.cuda.synchronize()
            sleep(gap)  # the GPU idles: its clocks recover from the power cap
            for _ in range(warm_replays):  # untimed: bring the clock back up ...
                current()
            current.ahead(replays)
            start.record()  # ... and the timed replays queue right behind them
            for _ in range(replays):
                current()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / (replays * calls)
        return take

    takes = [sample(each) for each in launches]  # the captures take turns (Budget.captures)
    settle = settle_cycles(budget.settle_s, gap + (warm_replays + replays) * replay_s)
    for i in range(settle):  # untimed: the process's start-up transient passes (Budget doc)
        takes[i % len(takes)]()
    drawn = _sample_steady(takes, read_clock, budget, clock)
    sustained = None
    if power.sustained:  # a view: back-to-back replays of the first capture
        sustained_budget = dataclasses.replace(budget, max_samples=budget.min_samples)
        sustained = _gpu_samples(_back_to_back(torch, launch, calls, sustained_budget, read_clock),
                                 method, calls, 0, read_clock, protocol=BACK_TO_BACK)
    return _gpu_samples(drawn, method, calls * replays, warm, read_clock, note=note,
                        protocol=GAP_WARM, gap_s=gap, warm_replays=warm_replays, settle_cycles=settle,
                        replays_per_sample=replays, captures=len(launches), sustained=sustained)


def _more_captures(torch, fn, calls: int, count: int,
                   first: _Launch) -> Tuple[List[_Launch], str]:
    """``count`` more graphs of the same calls (Budget.captures), each uploaded by
    one untimed replay, and why there are fewer ("" when none is missing): none
    when the first timing is not a graph replay (an eager burst has no capture to
    vary), those made so far when a later capture fails (out of memory, say)."""
    more: List[_Launch] = []
    if count <= 0:
        return more, ""
    if first.method != "cuda-graph":
        return more, "eager calls: no graph to capture again"
    for _ in range(count):
        try:
            graph = _capture_graph(torch, fn, calls)
        except RuntimeError as exc:  # the samples take turns over the graphs captured so far
            torch.cuda.synchronize()
            return more, f"the next capture failed: {str(exc).splitlines()[0]}"
        graph.replay()
        torch.cuda.synchronize()
        more.append(_Launch(graph.replay, "cuda-graph", ""))
    return more, ""


class L2Flusher:
    """Evicts the GPU's L2 by writing a buffer twice its size."""

    def __init__(self, torch, device=None) -> None:
        props = torch.cuda.get_device_properties(device or torch.cuda.current_device())
        l2 = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
        self._buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device="cuda")

    def __call__(self) -> None:
        self._buf.zero_()


def time_cuda_latency(fn: Callable[[], object], budget: Budget = Budget(),
                      l2_flush: bool = True, clocks=_NVML,
                      clock: Callable[[], float] = time.perf_counter) -> Samples:
    """Latency of one isolated call: synchronise, [flush L2], events around the
    call; the clock state is read after each call, slowdowns retaken as for
    device time."""
    import torch

    read_clock = _resolve_clocks(torch, clocks)
    warm, _ = _cuda_warmup(torch, fn, budget, clock)
    flush = L2Flusher(torch) if l2_flush else None
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def take() -> float:
        if flush is not None:
            flush()
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    drawn = _sample_steady([take], read_clock, budget, clock)
    return _gpu_samples(drawn, "cuda-events-per-call", 1, warm, read_clock, l2_flush=l2_flush,
                        protocol=ISOLATED)
