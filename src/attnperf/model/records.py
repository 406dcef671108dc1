"""Measurement records: what one (kernel, problem) measurement produced.

Pure data (numpy for the statistics, no torch, no I/O): the timing layer fills
:class:`Samples`, the correctness check fills :class:`Correctness`, the session
assembles a :class:`Measurement`, and the report format serialises it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Dict, List, Optional, Sequence

import numpy as np

from .problem import Problem
from .roofline import Roofline


def iqr_ratio(samples: Sequence[float]) -> float:
    """IQR / median (numpy's linear quantiles); 0 for a non-positive median."""
    q1, med, q3 = np.quantile(np.asarray(samples, dtype=float), [0.25, 0.5, 0.75])
    return float((q3 - q1) / med) if med > 0 else 0.0


UNSTABLE_IQR_RATIO = 0.10  # warn when IQR / median exceeds this

# NVML's clock-event ("throttle") reason bits (nvmlClocksEventReason*), by the
# names attnperf records.  Pure data here so that readers of results (render,
# analysis) can decode a recorded bit mask without importing NVML.
CLOCK_EVENT_REASONS: Dict[int, str] = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal", 0x40: "hw_thermal",
    0x80: "hw_power_brake", 0x100: "display_clock_setting",
}
# The reasons that slow a sample down (power or thermal slowdown): a GPU sample
# seen under one of these is retaken (measure/timing.py).
SLOWDOWN_REASONS: Dict[int, str] = {bit: CLOCK_EVENT_REASONS[bit]
                                    for bit in (0x4, 0x8, 0x20, 0x40, 0x80)}
SLOWDOWN_MASK = sum(SLOWDOWN_REASONS)
UNAVAILABLE = "unavailable"  # what a clock field says when NVML could not be read


def reason_names(bits: int) -> List[str]:
    """Names of the bits set in an NVML clock-event mask, lowest bit first
    (bits this table does not know are kept, as one hex value)."""
    names = [name for bit, name in sorted(CLOCK_EVENT_REASONS.items()) if bits & bit]
    unknown = bits & ~sum(CLOCK_EVENT_REASONS)
    return names + ([hex(unknown)] if unknown else [])


@dataclasses.dataclass(frozen=True)
class ClockReading:
    """The GPU's SM clock and clock-event reasons, read right after one sample."""

    sm_clock_mhz: Optional[int]
    event_bits: int = 0

    @property
    def slowdown_bits(self) -> int:
        return self.event_bits & SLOWDOWN_MASK

    @property
    def events(self) -> List[str]:
        return reason_names(self.event_bits)


@dataclasses.dataclass
class Samples:
    """Per-call times in seconds, one value per sample.

    GPU samples also say how the power state was controlled (``protocol``,
    ``gap_s``, ``warm_replays``, ``replays_per_sample``, ``settle_cycles``, ``captures``), what the clock was
    during each sample (``clocks``: one :class:`ClockReading` per sample, or
    None per sample NVML could not read; ``clock_source`` "nvml" or
    "unavailable"), which samples were set aside because they ran under a
    power or thermal slowdown (``rejected_s``, kept raw, never dropped
    silently) and, when the retake budget could not buy enough steady samples,
    why the figure is ``unsteady``.
    """

    samples_s: List[float]
    method: str
    calls_per_sample: int
    warmup_calls: int
    l2_flush: bool = False
    note: str = ""
    protocol: str = ""               # "gap-warm" | "back-to-back" | "isolated" (GPU); "" on a CPU
    gap_s: Optional[float] = None    # host idle before each sample (gap-warm)
    warm_replays: int = 0            # untimed replays queued right before each timed sample
    replays_per_sample: int = 1      # timed replays per sample (calls_per_sample counts calls)
    settle_cycles: int = 0           # untimed protocol cycles before the first sample (gap-warm)
    captures: int = 1                # CUDA graphs the samples took turns over (gap-warm)
    clock_source: str = ""           # "nvml" | "unavailable"; "" = not a GPU sample
    clocks: Optional[List[Optional[ClockReading]]] = None
    rejected_s: List[float] = dataclasses.field(default_factory=list)
    rejected_clocks: List[Optional[ClockReading]] = dataclasses.field(default_factory=list)
    retaken: int = 0                 # samples set aside because they ran under slowdown
    unsteady_reason: str = ""
    sustained: Optional["Samples"] = None  # back-to-back replays: a view, never gated
    # CPU, single-threaded (measure.timing.time_cpu_thread): samples_s is thread CPU time;
    # wall time per call (a view), the reference bursts' CPU seconds around the samples
    # (one more than samples) and the samples at the reference speed (recorded, not gated).
    cpu_clock: str = ""              # "thread"; "" = wall time (time_cpu) or a GPU
    wall_s: List[float] = dataclasses.field(default_factory=list)
    reference_s: List[float] = dataclasses.field(default_factory=list)
    normalised_s: List[float] = dataclasses.field(default_factory=list)

    @property
    def unsteady(self) -> bool:
        return bool(self.unsteady_reason)

    @property
    def slowdown_bits(self) -> int:
        """OR of the slowdown reasons seen during the samples in ``samples_s``."""
        bits = 0
        for c in self.clocks or []:
            bits |= c.slowdown_bits if c is not None else 0
        return bits

    @property
    def slowdown_samples(self) -> int:
        """How many samples in ``samples_s`` ran under a power or thermal slowdown."""
        return sum(1 for c in self.clocks or [] if c is not None and c.slowdown_bits)

    def sm_clocks_mhz(self) -> Optional[List[Optional[int]]]:
        """The SM clock per sample (None when NVML was unavailable)."""
        if self.clock_source != "nvml":
            return None
        return [c.sm_clock_mhz if c is not None else None for c in self.clocks or []]

    def clock_events(self, rejected: bool = False) -> Optional[List[Optional[List[str]]]]:
        """Clock-event reason names per sample (None when NVML was unavailable)."""
        if self.clock_source != "nvml":
            return None
        return [c.events if c is not None else None
                for c in (self.rejected_clocks if rejected else self.clocks or [])]

    def power_state(self) -> dict:
        """How the GPU power state was controlled and what the clocks did (GPU samples).

        The keys the report's ``device_time`` dict and the asv cache entry share;
        the clock keys say "unavailable" when NVML could not be read.
        """
        def nvml(value):
            return value if self.clock_source == "nvml" else UNAVAILABLE

        clocks = [c for c in self.sm_clocks_mhz() or [] if c is not None]
        return {
            "protocol": self.protocol,
            "gap_s": self.gap_s,
            "warm_replays": self.warm_replays,
            "replays_per_sample": self.replays_per_sample,
            "settle_cycles": self.settle_cycles,
            "captures": self.captures,
            "clock_source": self.clock_source,
            "sm_clock_mhz": nvml(self.sm_clocks_mhz()),
            "sm_clock_median_mhz": float(np.median(clocks)) if clocks else None,
            "clock_events": nvml(self.clock_events()),
            "slowdown_samples": nvml(self.slowdown_samples),
            "slowdown_reasons": nvml(reason_names(self.slowdown_bits)),
            # The same as an NVML bit mask (decode with reason_names; 0 = none).
            "slowdown_bits": nvml(self.slowdown_bits),
            "retaken": self.retaken,
            "unsteady": self.unsteady,
            "unsteady_reason": self.unsteady_reason,
        }

    @property
    def median_s(self) -> float:
        return float(np.median(self.samples_s))

    def stats(self) -> dict:
        xs = np.asarray(self.samples_s, dtype=float)
        n = len(xs)
        q1, med, q3 = (float(x) for x in np.quantile(xs, [0.25, 0.5, 0.75]))
        std = float(np.std(xs, ddof=1)) if n > 1 else 0.0
        ratio = (q3 - q1) / med if med > 0 else 0.0
        return {
            "n": n,
            "median_ms": med * 1e3,
            "iqr_ms": (q3 - q1) * 1e3,
            "q1_ms": q1 * 1e3,
            "q3_ms": q3 * 1e3,
            "mean_ms": float(np.mean(xs)) * 1e3,
            "std_ms": std * 1e3,
            "min_ms": float(xs.min()) * 1e3,
            "max_ms": float(xs.max()) * 1e3,
            "iqr_over_median": ratio,
            "unstable": ratio > UNSTABLE_IQR_RATIO,
        }

    def to_dict(self) -> dict:
        d = {"method": self.method, "calls_per_sample": self.calls_per_sample,
             "warmup_calls": self.warmup_calls, "l2_flush": self.l2_flush}
        if self.note:
            d["note"] = self.note
        if self.clock_source:  # a GPU sample: power state, clocks, retakes
            ps = self.power_state()
            gap = ps.pop("gap_s")
            ps["gap_ms"] = gap * 1e3 if gap is not None else None
            d.update(ps)
            d["rejected_samples_ms"] = [s * 1e3 for s in self.rejected_s]
            rejected = self.clock_events(rejected=True)
            d["rejected_clock_events"] = rejected if rejected is not None else UNAVAILABLE
        d.update(self.stats())
        d["samples_ms"] = [s * 1e3 for s in self.samples_s]
        if self.cpu_clock:  # a CPU sample timed with the thread's clock: the other figures too
            d["cpu_clock"] = self.cpu_clock
            d["wall_samples_ms"] = [s * 1e3 for s in self.wall_s]
            d["normalised_samples_ms"] = [s * 1e3 for s in self.normalised_s]
            d["cpu_reference_ms"] = [s * 1e3 for s in self.reference_s]
        if self.sustained is not None:
            d["sustained"] = self.sustained.to_dict()
        return d


def slowdown_summary(clocks: Sequence[Optional[ClockReading]]) -> str:
    """'hw_thermal in 1 of 5 samples, sw_power_cap in 3 of 5 samples' (empty when none)."""
    counts: Counter = Counter()
    for c in clocks:
        for name in reason_names(c.slowdown_bits) if c is not None else []:
            counts[name] += 1
    n = len(clocks)
    return ", ".join(f"{name} in {k} of {n} samples" for name, k in sorted(counts.items()))


@dataclasses.dataclass
class Correctness:
    passed: bool
    max_abs_error: float
    mean_abs_error: float
    rel_error: float
    correlation: float
    nonfinite: int
    tolerance: float
    tolerance_key: str
    # Inputs ("q", "k", "v"; "dout" in training passes) the kernel wrote to; any makes ``passed`` false.
    modified_inputs: List[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        text = (f"rel_error={self.rel_error:.3e} (tolerance {self.tolerance:.1e}, "
                f"{self.tolerance_key}), max_abs_error={self.max_abs_error:.3e}, "
                f"nonfinite={self.nonfinite}")
        if self.modified_inputs:
            text = f"kernel modified its inputs ({', '.join(self.modified_inputs)}); " + text
        return text


@dataclasses.dataclass(frozen=True)
class PeakMemory:
    """Device memory one call of the kernel allocated at its peak, beyond what was
    allocated before the call (inputs, the float64 reference, the previous output).

    ``peak_bytes`` None: unavailable on this device, ``note`` says why.  The
    figure counts the output and every temporary the call creates through
    PyTorch's allocator; memory a kernel takes outside it (a raw ``cudaMalloc``)
    is not seen.  ``baseline_bytes`` is what was allocated before the call.
    """

    peak_bytes: Optional[int]
    method: str
    note: str = ""
    baseline_bytes: Optional[int] = None

    @property
    def available(self) -> bool:
        return self.peak_bytes is not None

    @property
    def mib(self) -> Optional[float]:
        return None if self.peak_bytes is None else self.peak_bytes / 2**20

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Every status a measurement can end in.  ``crashed`` (the worker process died:
# signal or exit code in the reason) and ``timed_out`` (no result within the
# per-config limit) come from the isolated runner (measure/worker.py).
STATUSES = ("ok", "failed", "error", "crashed", "timed_out", "skipped", "unavailable")
# The kernel ran and is broken: wrong, raised, died, or hung.
BROKEN_STATUSES = ("failed", "error", "crashed", "timed_out")


@dataclasses.dataclass
class Measurement:
    kernel: str
    problem: Problem
    device: str
    status: str = "ok"
    reason: str = ""
    correctness: Optional[Correctness] = None
    device_time: Optional[Samples] = None  # GPU: graph replays; CPU: thread CPU time (1 thread) or wall time
    latency: Optional[Samples] = None      # GPU only: isolated call, events
    roofline: Optional[Roofline] = None
    peak_memory: Optional[PeakMemory] = None  # one warm call (measure/memory.py)
    dispatch: Optional[str] = None
    clock_before: Optional[dict] = None
    clock_after: Optional[dict] = None
    timestamp: str = ""
    warnings: List[str] = dataclasses.field(default_factory=list)  # the kernel's, deduplicated
    # Training passes: dQ, dK, dV judged against float64 autograd ("dq", "dk", "dv").
    gradients: Optional[Dict[str, Correctness]] = None
