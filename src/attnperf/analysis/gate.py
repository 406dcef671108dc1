"""THE gate rule: which asv benchmarks take part in a verdict, and their names.

Gated (lower is better): ``TimeAttention.*``.  Views (``LatencyViews``,
``RooflineViews``) are recorded for the site and never judged: ``asv
continuous`` is run with :data:`GATE_REGEX`, and the PR comment and the site's
regressions list skip what :func:`is_view` names.
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


def is_view(benchmark: str) -> bool:
    """Views (LatencyViews, RooflineViews): recorded for the site, never part of a verdict
    (the same rule as the suite's gate filter ``-b '^(?!.*Views)'``)."""
    return "Views" in benchmark


def short_name(benchmark: str) -> str:
    return benchmark[len(PREFIX):] if benchmark.startswith(PREFIX) else benchmark
