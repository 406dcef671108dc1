"""attnperf's GPU device time is the kernels' own time: it agrees with torch.profiler (CUDA only).

torch.profiler (CUPTI) records each CUDA kernel's duration.  Its samples here follow the power
protocol of attnperf's own (the host idles for the same gap, ~2 ms of untimed warm calls, then
~2 ms of calls that count), and the two instruments take turns for three rounds, so both see the
GPU in the same power state: what is left to differ is the instrument.  tools/gpu/acceptance.py
runs this file as its ``profiler`` check and reports the printed ``profiler agreement`` lines.
"""

from __future__ import annotations

import json
import statistics
import time

import pytest
import torch

from attnperf.errors import KernelUnavailableError
from attnperf.measure.session import Bench
from attnperf.measure.timing import Budget
from attnperf.model.catalog import PRESETS

TOLERANCE = 0.03  # |attnperf / profiler - 1|
SAMPLES = 7


def _profiled_ms(bench: Bench, gap_s: float, per_call_s: float) -> float:
    """Median over SAMPLES of the profiler's kernel time per call (ms), each sample after the gap
    and as many warm calls as it counts."""
    from torch.profiler import ProfilerActivity, profile

    n = max(1, min(200, int(2e-3 / per_call_s) + 1))
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(SAMPLES):
            torch.cuda.synchronize()
            time.sleep(gap_s)
            for _ in range(2 * n):  # n warm calls, then n that count
                bench.call()
        torch.cuda.synchronize()
    kernels = sorted((e.time_range.start, getattr(e, "device_time", None) or e.cuda_time)
                     for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    per_call = len(kernels) // (2 * n * SAMPLES)
    assert per_call and per_call * 2 * n * SAMPLES == len(kernels), (
        f"{len(kernels)} kernels over {2 * n * SAMPLES} calls: events dropped, "
        "or not a whole number per call"
    )
    span = n * per_call
    return statistics.median(
        sum(d for _, d in kernels[(2 * i + 1) * span : (2 * i + 2) * span]) / n / 1e3
        for i in range(SAMPLES)
    )


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["sdpa_cudnn", "sdpa_flash", "tiled"])
def test_device_time_agrees_with_the_profiler(kernel):
    try:
        bench = Bench(kernel, PRESETS["train"], "cuda")
    except KernelUnavailableError as exc:
        pytest.skip(f"{kernel} cannot run here: {exc}")
    try:
        assert bench.check().passed
        ours, theirs = [], []
        for _ in range(3):
            samples = bench.time_samples(Budget(budget_s=0.5))
            ours.append(samples.median_s * 1e3)
            theirs.append(_profiled_ms(bench, samples.gap_s or 5e-3, samples.median_s))
    finally:
        bench.release()
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(
        "profiler agreement: "
        + json.dumps(
            {
                "kernel": kernel,
                "attnperf_ms": statistics.median(ours),
                "profiler_ms": statistics.median(theirs),
                "ratio": ratio,
            }
        )
    )
    assert abs(ratio - 1) <= TOLERANCE, f"{kernel}: attnperf {ours} ms, profiler {theirs} ms"
