"""Measurement records: what one (kernel, problem) measurement produced.

Pure data (numpy for the statistics, no torch, no I/O): the timing layer fills
:class:`Samples`, the correctness check fills :class:`Correctness`, the session
assembles a :class:`Measurement`, and the report format serialises it.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np

from .problem import Problem
from .roofline import Roofline


def iqr_ratio(samples: Sequence[float]) -> float:
    """IQR / median (numpy's linear quantiles); 0 for a non-positive median."""
    q1, med, q3 = np.quantile(np.asarray(samples, dtype=float), [0.25, 0.5, 0.75])
    return float((q3 - q1) / med) if med > 0 else 0.0


UNSTABLE_IQR_RATIO = 0.10  # warn when IQR / median exceeds this


@dataclasses.dataclass
class Samples:
    """Per-call times in seconds, one value per sample."""

    samples_s: List[float]
    method: str
    calls_per_sample: int
    warmup_calls: int
    l2_flush: bool = False
    note: str = ""

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
        d.update(self.stats())
        d["samples_ms"] = [s * 1e3 for s in self.samples_s]
        return d


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"rel_error={self.rel_error:.3e} (tolerance {self.tolerance:.1e}, "
                f"{self.tolerance_key}), max_abs_error={self.max_abs_error:.3e}, "
                f"nonfinite={self.nonfinite}")


@dataclasses.dataclass
class Measurement:
    kernel: str
    problem: Problem
    device: str
    status: str = "ok"
    reason: str = ""
    correctness: Optional[Correctness] = None
    device_time: Optional[Samples] = None  # GPU: graph replays; CPU: wall time
    latency: Optional[Samples] = None      # GPU only: isolated call, events
    roofline: Optional[Roofline] = None
    dispatch: Optional[str] = None
    clock_before: Optional[dict] = None
    clock_after: Optional[dict] = None
    timestamp: str = ""
    warnings: List[str] = dataclasses.field(default_factory=list)  # the kernel's, deduplicated
