"""Samples: the per-call times of one timing, and how they were taken.

Pure data (numpy for the statistics, no torch, no I/O).  :class:`Samples`
holds the core values; protocol metadata comes in groups that are None where
they do not apply: :class:`PowerState` (a GPU timing's power protocol, clocks
and retakes) and :class:`ThreadTime` (a CPU timing at one thread: its views);
a clock reading is :class:`~attnperf.model.clocks.ClockReading`.  Each record
has ``to_dict`` (the report's form, schema v2) and ``from_dict``, which reads
it back so that writing it again gives the same JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .clocks import NVML, UNAVAILABLE, ClockReading, reason_bits, reason_names


def iqr_ratio(samples: Sequence[float]) -> float:
    """IQR / median (numpy's linear quantiles); 0 for a non-positive median."""
    q1, med, q3 = np.quantile(np.asarray(samples, dtype=float), [0.25, 0.5, 0.75])
    return float((q3 - q1) / med) if med > 0 else 0.0


UNSTABLE_IQR_RATIO = 0.10  # warn when IQR / median exceeds this

def _ms(seconds: Sequence[float]) -> list[float]:
    return [s * 1e3 for s in seconds]


def seconds_of_ms(ms: float) -> float:
    """The seconds a report's millisecond figure was written from (``s * 1e3``).

    Two doubles can round to the same milliseconds, so the seconds are not
    always recoverable; of ``ms / 1e3`` and its two neighbours, those that map
    back to ``ms`` exactly are candidates, and the one with the shortest decimal
    form is taken (``2.1`` ms reads as ``0.0021`` s, not ``0.0021000000000000003``).
    Either way a record read from a report writes the same report again.
    """
    s = ms / 1e3
    exact = [c for c in (s, math.nextafter(s, -math.inf), math.nextafter(s, math.inf))
             if c * 1e3 == ms]
    return min(exact, key=lambda c: len(repr(c))) if exact else s


def _seconds(ms: Sequence[float]) -> list[float]:
    return [seconds_of_ms(x) for x in ms]


def _reading(mhz: int | None, events: list[str] | None) -> ClockReading | None:
    """A :class:`ClockReading` from its report form (None: NVML could not read it)."""
    if mhz is None and events is None:
        return None
    return ClockReading(mhz, reason_bits(events or []))


@dataclasses.dataclass(frozen=True)
class PowerState:
    """How a GPU timing controlled the power state, and what the clocks did.

    ``protocol``: ``gap-warm`` (an idle gap and warm replays before each
    sample), ``back-to-back`` (replays queued one after the other) or
    ``isolated`` (one call after a synchronisation: latency).  ``gap_s``,
    ``warm_replays``, ``replays_per_sample``, ``settle_cycles`` and
    ``captures`` describe gap-warm samples (``gap_s`` is None otherwise).

    ``clocks``: one :class:`ClockReading` per kept sample, None for a sample
    NVML could not read (``clock_source`` ``nvml``; every one None when NVML
    was unavailable: ``clock_source`` ``unavailable``).  Samples set aside
    because they ran under a power or thermal slowdown are kept raw in
    ``rejected_s`` (never dropped silently); ``unsteady_reason`` says why the
    figure cannot be trusted like a steady one when the retakes could not buy
    enough steady samples (None: steady).  ``sustained``: back-to-back
    replays taken after the samples, a view that is never gated.
    """

    protocol: str
    clock_source: str = UNAVAILABLE
    clocks: list[ClockReading | None] = dataclasses.field(default_factory=list)
    gap_s: float | None = None
    warm_replays: int = 0
    replays_per_sample: int = 1
    settle_cycles: int = 0
    captures: int = 1
    rejected_s: list[float] = dataclasses.field(default_factory=list)
    rejected_clocks: list[ClockReading | None] = dataclasses.field(default_factory=list)
    retaken: int = 0
    unsteady_reason: str | None = None
    sustained: Samples | None = None

    @property
    def nvml(self) -> bool:
        return self.clock_source == NVML

    @property
    def slowdown_bits(self) -> int:
        """OR of the slowdown reasons seen during the kept samples."""
        bits = 0
        for c in self.clocks:
            bits |= c.slowdown_bits if c is not None else 0
        return bits

    @property
    def slowdown_samples(self) -> int:
        """How many kept samples ran under a power or thermal slowdown."""
        return sum(1 for c in self.clocks if c is not None and c.slowdown_bits)

    def sm_clocks_mhz(self) -> list[int | None] | None:
        """The SM clock per kept sample (None when NVML was unavailable)."""
        if not self.nvml:
            return None
        return [c.sm_clock_mhz if c is not None else None for c in self.clocks]

    def clock_events(self, rejected: bool = False) -> list[list[str] | None] | None:
        """Clock-event reason names per sample (None when NVML was unavailable)."""
        if not self.nvml:
            return None
        return [c.events if c is not None else None
                for c in (self.rejected_clocks if rejected else self.clocks)]

    def summary(self) -> dict[str, Any]:
        """The keys the report's ``device_time`` dict and the asv cache entry share;
        the clock keys say "unavailable" when NVML could not be read."""
        def nvml(value: object) -> object:
            return value if self.nvml else UNAVAILABLE

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
            "unsteady": self.unsteady_reason is not None,
            "unsteady_reason": self.unsteady_reason or "",
        }

    def to_dict(self) -> dict[str, Any]:
        """The report form (``summary`` with ``gap_ms``, and the rejected samples);
        ``sustained`` is written by :meth:`Samples.to_dict`."""
        d = self.summary()
        gap = d.pop("gap_s")
        d["gap_ms"] = gap * 1e3 if gap is not None else None
        d["rejected_samples_ms"] = _ms(self.rejected_s)
        rejected = self.clock_events(rejected=True)
        d["rejected_clock_events"] = rejected if rejected is not None else UNAVAILABLE
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], samples: int) -> PowerState:
        """Inverse of :meth:`to_dict` for a report's ``device_time`` dict of ``samples``
        kept samples.  A rejected sample's SM clock is not written: it reads as None."""
        rejected = _seconds(d.get("rejected_samples_ms", []))
        if d["clock_source"] == NVML:
            clocks = [
                _reading(mhz, ev)
                for mhz, ev in zip(d["sm_clock_mhz"], d["clock_events"], strict=False)
            ]
            rejected_clocks = [_reading(None, ev) for ev in d.get("rejected_clock_events", [])]
        else:
            clocks, rejected_clocks = [None] * samples, [None] * len(rejected)
        gap_ms = d.get("gap_ms")
        return cls(d["protocol"], d["clock_source"], clocks,
                   gap_s=seconds_of_ms(gap_ms) if gap_ms is not None else None,
                   warm_replays=d.get("warm_replays", 0),
                   replays_per_sample=d.get("replays_per_sample", 1),
                   settle_cycles=d.get("settle_cycles", 0), captures=d.get("captures", 1),
                   rejected_s=rejected, rejected_clocks=rejected_clocks,
                   retaken=d.get("retaken", 0), unsteady_reason=d.get("unsteady_reason") or None,
                   sustained=Samples.from_dict(d["sustained"]) if d.get("sustained") else None)


@dataclasses.dataclass(frozen=True)
class ThreadTime:
    """The views of a CPU timing at one thread, whose samples are the measuring
    thread's CPU time (``clock`` "thread"): wall time per call, the reference
    bursts' CPU seconds around the samples (one more than samples) and the
    samples at the reference speed.  Recorded, never gated."""

    wall_s: list[float] = dataclasses.field(default_factory=list)
    reference_s: list[float] = dataclasses.field(default_factory=list)
    normalised_s: list[float] = dataclasses.field(default_factory=list)
    clock: str = "thread"

    def to_dict(self) -> dict[str, Any]:
        return {"cpu_clock": self.clock, "wall_samples_ms": _ms(self.wall_s),
                "normalised_samples_ms": _ms(self.normalised_s),
                "cpu_reference_ms": _ms(self.reference_s)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThreadTime:
        return cls(_seconds(d.get("wall_samples_ms", [])), _seconds(d.get("cpu_reference_ms", [])),
                   _seconds(d.get("normalised_samples_ms", [])), d["cpu_clock"])


_POWER_KEYS = frozenset(f.name for f in dataclasses.fields(PowerState))
_THREAD_KEYS = {"cpu_clock": "clock", "wall_s": "wall_s", "reference_s": "reference_s",
                "normalised_s": "normalised_s"}


def _grouped(flat: dict[str, Any]) -> tuple[PowerState | None, ThreadTime | None]:
    """The groups from the flat keywords of the earlier, flat record (``protocol=``,
    ``clock_source=``, ``cpu_clock=``, ``wall_s=`` ...), where "" meant "none"."""
    unknown = set(flat) - _POWER_KEYS - set(_THREAD_KEYS)
    if unknown:
        raise TypeError(
            f"Samples() got unexpected keyword argument(s): {', '.join(sorted(unknown))}"
        )
    power = thread = None
    gpu = {k: v for k, v in flat.items() if k in _POWER_KEYS}
    if gpu and (gpu.get("clock_source") or gpu.get("protocol")):
        gpu["clocks"] = gpu.get("clocks") or []
        gpu["unsteady_reason"] = gpu.get("unsteady_reason") or None
        power = PowerState(**gpu)
    cpu = {_THREAD_KEYS[k]: v for k, v in flat.items() if k in _THREAD_KEYS}
    if cpu.get("clock"):
        thread = ThreadTime(**cpu)
    return power, thread


class _Flat:
    """A flat name of the earlier record for ``<group>.<field>``: reads the field
    (``default`` without the group); writing it replaces the group (made from
    the flat keyword when there is none; "" for ``cpu_clock`` or ``clock_source``
    removes it)."""

    def __init__(self, group: str, field: str, default: Any = None) -> None:
        self.group, self.field, self.default, self.flat = group, field, default, field

    def __set_name__(self, owner: type, name: str) -> None:
        self.flat = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        part = getattr(obj, self.group)
        return self.default if part is None else getattr(part, self.field)

    def __set__(self, obj: object, value: Any) -> None:
        part = getattr(obj, self.group)
        if self.flat in ("cpu_clock", "clock_source") and not value:
            new = None
        elif part is None:
            power, thread = _grouped({self.flat: value})
            new = power if self.group == "power" else thread
        else:
            new = dataclasses.replace(part, **{self.field: value})
        setattr(obj, self.group, new)


@dataclasses.dataclass(init=False)
class Samples:
    """Per-call times in seconds, one value per sample, and how they were taken.

    The core values: ``samples_s`` (raw, in the order taken), ``method``, the
    calls each sample timed and the untimed warm-up calls, whether L2 was
    flushed before each call, a ``note``.  Protocol metadata comes in groups,
    None where it does not apply: ``power`` (GPU: the power protocol, the
    clocks, retakes; :class:`PowerState`) and ``thread`` (CPU at one thread:
    the wall-time and speed-normalised views; :class:`ThreadTime`).

    The flat keywords and attribute names of the earlier record (``protocol``,
    ``clock_source``, ``gap_s``, ``cpu_clock``, ``wall_s`` ...) still work:
    the constructor folds them into the groups, and the attributes read them.
    """

    samples_s: list[float]
    method: str
    calls_per_sample: int
    warmup_calls: int
    l2_flush: bool = False
    note: str = ""
    power: PowerState | None = None
    thread: ThreadTime | None = None

    def __init__(self, samples_s: list[float], method: str, calls_per_sample: int,
                 warmup_calls: int, l2_flush: bool = False, note: str = "",
                 power: PowerState | None = None, thread: ThreadTime | None = None,
                 **flat: Any) -> None:
        if flat:
            folded_power, folded_thread = _grouped(flat)
            power, thread = power or folded_power, thread or folded_thread
        self.samples_s, self.method = samples_s, method
        self.calls_per_sample, self.warmup_calls = calls_per_sample, warmup_calls
        self.l2_flush, self.note, self.power, self.thread = l2_flush, note, power, thread

    # The earlier record's flat names for the groups' fields.
    protocol = _Flat("power", "protocol")
    clock_source = _Flat("power", "clock_source")
    gap_s = _Flat("power", "gap_s")
    warm_replays = _Flat("power", "warm_replays", 0)
    replays_per_sample = _Flat("power", "replays_per_sample", 1)
    settle_cycles = _Flat("power", "settle_cycles", 0)
    captures = _Flat("power", "captures", 1)
    retaken = _Flat("power", "retaken", 0)
    unsteady_reason = _Flat("power", "unsteady_reason")
    sustained = _Flat("power", "sustained")
    cpu_clock = _Flat("thread", "clock")
    wall_s = _Flat("thread", "wall_s", ())
    reference_s = _Flat("thread", "reference_s", ())
    normalised_s = _Flat("thread", "normalised_s", ())

    @property
    def unsteady(self) -> bool:
        return self.power is not None and self.power.unsteady_reason is not None

    @property
    def slowdown_bits(self) -> int:
        """OR of the slowdown reasons seen during the samples (0 without clocks)."""
        return self.power.slowdown_bits if self.power is not None else 0

    @property
    def slowdown_samples(self) -> int:
        """How many samples ran under a power or thermal slowdown."""
        return self.power.slowdown_samples if self.power is not None else 0

    def sm_clocks_mhz(self) -> list[int | None] | None:
        """The SM clock per sample (None when NVML was unavailable or not a GPU sample)."""
        return self.power.sm_clocks_mhz() if self.power is not None else None

    def clock_events(self, rejected: bool = False) -> list[list[str] | None] | None:
        """Clock-event reason names per sample (None when NVML was unavailable)."""
        return self.power.clock_events(rejected) if self.power is not None else None

    def power_state(self) -> dict[str, Any]:
        """:meth:`PowerState.summary` (empty for a CPU sample)."""
        return self.power.summary() if self.power is not None else {}

    @property
    def median_s(self) -> float:
        return float(np.median(self.samples_s))

    def stats(self) -> dict[str, Any]:
        """Statistics of the samples, in milliseconds.  Taken over the millisecond
        values the report writes, so a record read from a report states them again."""
        xs = np.asarray(_ms(self.samples_s), dtype=float)
        n = len(xs)
        q1, med, q3 = (float(x) for x in np.quantile(xs, [0.25, 0.5, 0.75]))
        std = float(np.std(xs, ddof=1)) if n > 1 else 0.0
        ratio = (q3 - q1) / med if med > 0 else 0.0
        return {
            "n": n,
            "median_ms": med,
            "iqr_ms": q3 - q1,
            "q1_ms": q1,
            "q3_ms": q3,
            "mean_ms": float(np.mean(xs)),
            "std_ms": std,
            "min_ms": float(xs.min()),
            "max_ms": float(xs.max()),
            "iqr_over_median": ratio,
            "unstable": ratio > UNSTABLE_IQR_RATIO,
        }

    def to_dict(self) -> dict[str, Any]:
        """The report's ``device_time`` / ``latency`` dict (schema v2)."""
        d = {"method": self.method, "calls_per_sample": self.calls_per_sample,
             "warmup_calls": self.warmup_calls, "l2_flush": self.l2_flush}
        if self.note:
            d["note"] = self.note
        if self.power is not None:  # a GPU sample: power state, clocks, retakes
            d.update(self.power.to_dict())
        d.update(self.stats())
        d["samples_ms"] = _ms(self.samples_s)
        if self.thread is not None:  # a CPU sample timed with the thread's clock: the views too
            d.update(self.thread.to_dict())
        if self.sustained is not None:
            d["sustained"] = self.sustained.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Samples:
        """Inverse of :meth:`to_dict` (statistics are recomputed from the samples)."""
        samples = _seconds(d["samples_ms"])
        return cls(samples, d["method"], d["calls_per_sample"], d["warmup_calls"],
                   l2_flush=d.get("l2_flush", False), note=d.get("note", ""),
                   power=PowerState.from_dict(d, len(samples)) if "clock_source" in d else None,
                   thread=ThreadTime.from_dict(d) if "cpu_clock" in d else None)
