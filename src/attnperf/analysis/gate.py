"""THE gate rule: which asv benchmarks take part in a verdict, at which factor, and their names.

Gated (lower is better): ``TimeAttention.*``, ``Accuracy.*`` and
``PeakMemory.*``.  Views (``LatencyViews``, ``RooflineViews``) are recorded for
the site and never judged: ``asv continuous`` is run with :data:`GATE_REGEX`,
and the PR comment and the site's regressions list skip what :func:`is_view`
names.

Times are judged at the suite's factor (or a calibrated threshold).  The error
figures and the peak memory are deterministic -- seeded inputs, the same code:
identical commits give identical values on a CPU (ratio exactly 1.00) -- so
timing noise says nothing about them, and they are judged at a fixed factor of
their own (:data:`METRIC_FACTORS`; a calibrated threshold wins when larger):

* accuracy x1.25: harmless changes to the rounding order move the errors less
  (tiled's KV block 32..512 and SDPA's CPU kernel against tiled: max and mean
  abs error within 1.16x of each other on the cpu_* problems), while the
  softmax in bfloat16 instead of float32 multiplies them by ~10^4 on float32
  problems and by 1.28-1.43x (max) on bfloat16 ones (measured on the CPU);
* peak memory x1.10: allocator figures of one code path do not move at all;
  10 % more memory per call is a change worth a look, and a doubled one is flagged.
"""

from __future__ import annotations

GATE_REGEX = "^(?!.*Views)"

PREFIX = "bench_attention."
TIME = PREFIX + "TimeAttention.track_device_time"
LATENCY = PREFIX + "LatencyViews.track_latency"  # a view since suite commit 768ce98
X_OVER_FLOOR = PREFIX + "TimeAttention.track_x_over_floor"
VIEW_TFLOPS = PREFIX + "RooflineViews.track_tflops"
VIEW_GB_S = PREFIX + "RooflineViews.track_bandwidth_gb_s"
VIEW_EFFICIENCY = PREFIX + "RooflineViews.track_efficiency_pct"
VIEW_REGIME = PREFIX + "RooflineViews.track_regime_code"
# Training passes (kernel x problem x pass; gated like TimeAttention, views for the site).
PASS_TIME = PREFIX + "TrainingPass.track_device_time"
PASS_X_OVER_FLOOR = PREFIX + "TrainingPass.track_x_over_floor"
PASS_VIEW_TFLOPS = PREFIX + "TrainingPassViews.track_tflops"
PASS_VIEW_EFFICIENCY = PREFIX + "TrainingPassViews.track_efficiency_pct"
MAX_ABS_ERROR = PREFIX + "Accuracy.track_max_abs_error"
MEAN_ABS_ERROR = PREFIX + "Accuracy.track_mean_abs_error"
PEAK_MEMORY = PREFIX + "PeakMemory.track_peak_memory_bytes"

# Benchmark class name prefix -> (the factor it is judged at, what "worse" means).
METRIC_FACTORS = {"Accuracy": 1.25, "PeakMemory": 1.10}
WORSE_WORDS = {"Accuracy": "less accurate", "PeakMemory": "more memory"}


def metric_class(benchmark: str) -> str | None:
    """"Accuracy" / "PeakMemory" for a deterministic metric (any class whose name
    starts so, e.g. one with a pass parameter), else None (a time)."""
    cls = short_name(benchmark).split(".")[0]
    return next((k for k in METRIC_FACTORS if cls.startswith(k)), None)


def metric_factor(benchmark: str) -> float | None:
    """The fixed factor a deterministic metric is judged at; None for times."""
    kind = metric_class(benchmark)
    return METRIC_FACTORS[kind] if kind and not is_view(benchmark) else None


def is_view(benchmark: str) -> bool:
    """Views (LatencyViews, RooflineViews): recorded for the site, never part of a verdict
    (the same rule as the suite's gate filter ``-b '^(?!.*Views)'``)."""
    return "Views" in benchmark


def short_name(benchmark: str) -> str:
    return benchmark[len(PREFIX):] if benchmark.startswith(PREFIX) else benchmark
