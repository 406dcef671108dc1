"""Measurement records: what one (kernel, problem) measurement produced.

Pure data (no torch, no I/O): the timing layer fills :class:`Samples`
(:mod:`attnperf.model.samples`), the correctness check fills
:class:`Correctness`, the session assembles a :class:`Measurement`, and the
report format serialises it.  Every record that is written has a reader:
``to_dict`` (or :func:`attnperf.io.report.result_entry` for a
:class:`Measurement`) and ``from_dict`` (or
:func:`attnperf.io.report.measurement_from_entry`), so that a report read into
records writes the same report again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

# The samples' and clocks' records, importable from here as they always were.
from .clocks import (  # noqa: F401
    CLOCK_EVENT_REASONS,
    NVML,
    SLOWDOWN_MASK,
    SLOWDOWN_REASONS,
    UNAVAILABLE,
    ClockReading,
    reason_bits,
    reason_names,
    slowdown_summary,
)
from .problem import Problem
from .roofline import Roofline
from .samples import UNSTABLE_IQR_RATIO, PowerState, Samples, ThreadTime, iqr_ratio, seconds_of_ms  # noqa: F401


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The fields of dataclass ``cls`` found in ``d``; a report writes a non-finite
    number as null, so a float field that reads null is NaN again."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            value = d[f.name]
            out[f.name] = math.nan if value is None and f.type == "float" else value
    return out


@dataclasses.dataclass
class Correctness:
    """How one output (or gradient) compares with the float64 reference."""

    passed: bool
    max_abs_error: float
    mean_abs_error: float
    rel_error: float
    correlation: float
    nonfinite: int
    tolerance: float
    tolerance_key: str
    # Inputs ("q", "k", "v"; "dout" in training passes) the kernel wrote to; any makes ``passed``
    # false.
    modified_inputs: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Correctness:
        return cls(**_known(cls, d))

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

    peak_bytes: int | None
    method: str
    note: str = ""
    baseline_bytes: int | None = None

    @property
    def available(self) -> bool:
        return self.peak_bytes is not None

    @property
    def mib(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / 2**20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeakMemory:
        return cls(**_known(cls, d))


def roofline_from_dict(d: dict[str, Any]) -> Roofline:
    """Inverse of :meth:`Roofline.to_dict` (``floor_ms`` is derived from ``floor_s``)."""
    return Roofline(**_known(Roofline, d))


# Every status a measurement can end in.  ``crashed`` (the worker process died:
# signal or exit code in the reason) and ``timed_out`` (no result within the
# per-config limit) come from the isolated runner (measure/worker.py).
STATUSES = ("ok", "failed", "error", "crashed", "timed_out", "skipped", "unavailable")
# The kernel ran and is broken: wrong, raised, died, or hung.
BROKEN_STATUSES = ("failed", "error", "crashed", "timed_out")


@dataclasses.dataclass
class Measurement:
    """One (kernel, problem) on one device: its status and every figure taken.

    Written as a report's result entry by :func:`attnperf.io.report.result_entry`
    and read back by :func:`attnperf.io.report.measurement_from_entry`.
    """

    kernel: str
    problem: Problem
    device: str
    status: str = "ok"
    reason: str = ""
    correctness: Correctness | None = None
    device_time: Samples | None = (
        None  # GPU: graph replays; CPU: thread CPU time (1 thread) or wall time
    )
    latency: Samples | None = None      # GPU only: isolated call, events
    roofline: Roofline | None = None
    peak_memory: PeakMemory | None = None  # one warm call (measure/memory.py)
    dispatch: str | None = None
    clock_before: dict[str, Any] | None = None
    clock_after: dict[str, Any] | None = None
    timestamp: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)  # the kernel's, deduplicated
    # Training passes: dQ, dK, dV judged against float64 autograd ("dq", "dk", "dv").
    gradients: dict[str, Correctness] | None = None


@dataclasses.dataclass
class Report:
    """A run's measurements and the context they were taken in: what a JSON report
    holds apart from the figures derived from them (summary counts, the
    single-config top-level keys).  ``timestamp``: when the report was written
    (None: now, when it is built)."""

    measurements: list[Measurement]
    environment: dict[str, Any]
    ceilings: dict[str, Any] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    not_run: list[str] = dataclasses.field(default_factory=list)
    timestamp: str | None = None
