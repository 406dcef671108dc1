"""The GPU power protocol: how each device-time sample controls the power state.

Replays back to back can hold a GPU at its power cap, where the SM clock
wanders and a compute-bound median moves by several percent from one round to
the next.  So each ``gap-warm`` sample (:class:`PowerControl`) is: synchronise;
the host sleeps a **gap** (the GPU idles and its clocks recover); **warm**
untimed replays are queued, and right behind them the timed replays between
two events.  The warm replays bring the clock back up from idle; the timed
ones follow with no host gap.  Every sample lasts at least ``sample_s``
(several replays when one replay is short: right after an idle gap a short
sample would be dominated by the clock ramp) and the warm part at least
``warm_s``.  The gap scales with the work it follows, ``gap_ratio`` x (warm +
timed), clamped to [``gap_min_s``, ``gap_max_s``], so the duty cycle -- what a
power controller averages -- stays at or below 1/(1 + ratio) for short and
long problems alike.  attnperf only idles: it never changes clocks or power
settings.

After each sample the SM clock and the clock-event reasons are read (NVML,
:mod:`attnperf.measure.nvml`).  A sample seen under power or thermal slowdown
that is also slow (``Budget.slow_margin`` over the median so far) is set aside
and retaken (:func:`sample_steady`), at most ``Budget.retake_fraction`` x
``max_samples`` extra samples; when that does not buy ``min_samples`` steady
ones, every sample is kept and the result is marked unsteady with the reasons.
Without NVML the clock fields say "unavailable" and nothing is retaken.

Also here: the ``back-to-back`` protocol (replays one after the other, a
sustained view that is never gated; :func:`back_to_back`), settling cycles
before the samples (:func:`settle_cycles`) and several captures taking turns
(``Budget.captures``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from ..model.clocks import NVML, UNAVAILABLE, ClockReading, slowdown_summary
from ..model.samples import PowerState
from . import nvml
from .budget import Budget, keep_sampling
from .cudalaunch import Launch, TorchLike

GAP_WARM = "gap-warm"
BACK_TO_BACK = "back-to-back"
ISOLATED = "isolated"
PROTOCOLS = (GAP_WARM, BACK_TO_BACK)
MAX_REPLAYS = 1000  # per part of a sample (warm, timed): bounds a degenerate replay length
MAX_SETTLE_CYCLES = 100


@dataclasses.dataclass(frozen=True)
class PowerControl:
    """How each device-time sample controls the GPU's power state (module doc).

    The defaults give a ~2 ms CUDA graph a 5 ms gap, one untimed replay, then
    the timed one: a 2 ms warm part and a 2 ms timed part at ratio 1.25.
    ``sustained``: also take ``budget.min_samples`` back-to-back samples, a view.
    """

    protocol: str = GAP_WARM
    gap_ratio: float = 1.25
    gap_min_s: float = 1e-3
    gap_max_s: float = 20e-3
    warm_s: float = 2e-3
    sample_s: float = 2e-3
    sustained: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown power protocol {self.protocol!r}; allowed: {', '.join(PROTOCOLS)}"
            )
        for name in ("gap_ratio", "gap_min_s", "gap_max_s", "warm_s", "sample_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"PowerControl.{name} must be a finite number >= 0, not {value!r}")
        if self.gap_min_s > self.gap_max_s:
            raise ValueError(f"PowerControl.gap_min_s ({self.gap_min_s}) is above "
                             f"gap_max_s ({self.gap_max_s})")

    def plan(self, replay_s: float) -> tuple[int, int, float]:
        """(warm replays, timed replays, gap seconds) for a replay of ``replay_s``."""
        def replays(seconds: float) -> int:
            # 1e-9: 2 ms / 1 ms must be 2 replays, not 3 through rounding.
            return int(min(MAX_REPLAYS, max(1, math.ceil(seconds / replay_s - 1e-9))))

        warm, timed = replays(self.warm_s), replays(self.sample_s)
        gap = min(self.gap_max_s, max(self.gap_min_s, self.gap_ratio * (warm + timed) * replay_s))
        return warm, timed, gap


POWER = PowerControl()
BACK_TO_BACK_POWER = PowerControl(protocol=BACK_TO_BACK, sustained=False)

ClockFn = Callable[[], ClockReading | None]
NVML_CLOCKS = object()  # default for a timer's ``clocks``: NVML for torch's current GPU


def resolve_clocks(torch: TorchLike, clocks: ClockFn | object | None) -> ClockFn | None:
    """The clock reader to call after each sample: ``clocks`` itself (None:
    unavailable), or for :data:`NVML_CLOCKS` NVML's reader for the current GPU."""
    if clocks is not NVML_CLOCKS:
        return cast("ClockFn | None", clocks)
    index = torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return nvml.clock_reader(str(uuid) if uuid else None, index)


@dataclasses.dataclass
class Drawn:
    """What a sampling loop produced (see :func:`sample_steady`)."""

    samples_s: list[float]
    clocks: list[ClockReading | None]
    rejected_s: list[float] = dataclasses.field(default_factory=list)
    rejected_clocks: list[ClockReading | None] = dataclasses.field(default_factory=list)
    retaken: int = 0
    unsteady_reason: str | None = None

    def power_state(self, protocol: str, read_clock: ClockFn | None,
                    **fields: Any) -> PowerState:
        """The record of these samples under ``protocol`` (``fields``: the protocol's
        settings, :class:`~attnperf.model.records.PowerState`'s names)."""
        return PowerState(protocol, NVML if read_clock is not None else UNAVAILABLE,
                          self.clocks, rejected_s=self.rejected_s,
                          rejected_clocks=self.rejected_clocks, retaken=self.retaken,
                          unsteady_reason=self.unsteady_reason, **fields)


def is_slow(seconds: float, taken: list[tuple[float, ClockReading | None]],
            margin: float | None) -> bool:
    """Whether a sample flagged with a slowdown reason is also slow: ``margin`` above
    the median of ``taken`` (its own capture's samples so far; at least 3).  A
    GPU at its power cap reports the cap after nearly every sample, most of
    them on time: the flag alone does not make a sample wrong."""
    if margin is None:
        return True
    xs = sorted(x for x, _ in taken)
    return len(xs) >= 3 and seconds > (1.0 + margin) * xs[len(xs) // 2]


def sample_steady(takes: Sequence[Callable[[], float]], read_clock: ClockFn | None,
                  budget: Budget, clock: Callable[[], float] = time.perf_counter) -> Drawn:
    """Draw samples until the budget says stop, the callables in ``takes`` taking
    turns (one per graph capture, ``Budget.captures``; usually one), retaking those
    seen under power or thermal slowdown that are also slow (:func:`is_slow`).

    Such a sample is set aside and another is drawn from the same callable, up to
    ``ceil(retake_fraction * max_samples)`` times; the next flagged sample ends
    the sampling.  Fewer than ``min_samples`` steady samples then means
    unsteady: every sample drawn is kept, in order, with the reasons.
    ``spent`` is the wall time of the kept samples, idle gaps included, so the
    budget bounds what a timing really costs.  A sample is judged slow against
    its own callable's samples (a capture in a slower state is not retaken for
    it), and sampling goes on to a whole number of turns (within ``max_samples``).
    """
    kept: list[float] = []
    kept_clocks: list[ClockReading | None] = []
    taken: list[tuple[float, ClockReading | None]] = []
    own: list[list[tuple[float, ClockReading | None]]] = [[] for _ in takes]
    rejected: list[tuple[float, ClockReading | None]] = []
    max_retakes = math.ceil(budget.retake_fraction * budget.max_samples)
    spent, turn = 0.0, 0
    while keep_sampling(kept, spent, budget) or 0 < turn and len(kept) < budget.max_samples:
        t0 = clock()
        seconds = takes[turn]()
        cost = clock() - t0
        reading = read_clock() if read_clock is not None else None
        taken.append((seconds, reading))
        own[turn].append((seconds, reading))
        if (
            reading is not None
            and reading.slowdown_bits
            and is_slow(seconds, own[turn], budget.slow_margin)
        ):
            rejected.append((seconds, reading))
            if len(rejected) > max_retakes:
                break
            continue
        spent += cost
        kept.append(seconds)
        kept_clocks.append(reading)
        turn = (turn + 1) % len(takes)
    if len(kept) >= budget.min_samples or not rejected:
        return Drawn(kept, kept_clocks, [x for x, _ in rejected], [c for _, c in rejected],
                     retaken=len(rejected))
    # The retake budget is spent: keep everything (the figure is what the GPU
    # did) and say why it cannot be trusted like a steady one.
    clocks = [c for _, c in taken]
    reason = (f"{slowdown_summary(clocks)}; {len(kept)} steady of {budget.min_samples} "
              f"samples needed after {max_retakes} retakes")
    return Drawn([x for x, _ in taken], clocks, retaken=len(rejected), unsteady_reason=reason)


def gap_warm_take(torch: TorchLike, launch: Launch, calls: int, warm_replays: int, replays: int,
                  gap_s: float, sleep: Callable[[float], None] = time.sleep) -> Callable[[], float]:
    """One gap-warm sample of ``launch`` (``calls`` calls a launch), per call."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def take() -> float:
        torch.cuda.synchronize()
        sleep(gap_s)  # the GPU idles: its clocks recover from the power cap
        for _ in range(warm_replays):  # untimed: bring the clock back up ...
            launch()
        launch.ahead(replays)
        start.record()  # ... and the timed replays queue right behind them
        for _ in range(replays):
            launch()
        end.record()
        end.synchronize()
        seconds: float = start.elapsed_time(end) / 1e3 / (replays * calls)
        return seconds
    return take


def back_to_back(torch: TorchLike, launch: Launch, calls: int, budget: Budget,
                 read_clock: ClockFn | None) -> Drawn:
    """Replays enqueued back to back with an event between each: one sample
    per replay; the clock is read once per batch (nothing is retaken)."""
    samples: list[float] = []
    clocks: list[ClockReading | None] = []
    spent = 0.0
    while keep_sampling(samples, spent, budget):
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
        for a, b in zip(events, events[1:], strict=False):
            seconds = a.elapsed_time(b) / 1e3
            spent += seconds
            samples.append(seconds / calls)
            clocks.append(reading)
    return Drawn(samples, clocks)


def settle_cycles(settle_s: float, cycle_s: float) -> int:
    """Untimed protocol cycles that last about ``settle_s`` (cycle: gap + warm + timed
    replays), at most :data:`MAX_SETTLE_CYCLES`; 0 when ``settle_s`` is 0."""
    if settle_s <= 0:
        return 0
    return int(min(MAX_SETTLE_CYCLES, max(1, math.ceil(settle_s / max(cycle_s, 1e-6)))))
