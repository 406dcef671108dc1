"""Cross-check attnperf's device time against torch.profiler's kernel time (GPU).

For each (kernel, problem): attnperf's device time (CUDA-graph replay, median)
and the sum of CUDA kernel durations per call that torch.profiler (CUPTI)
records over eager calls, **under the same power protocol**: each profiled
sample follows the same host idle gap and ~2 ms of untimed warm calls that
attnperf's samples follow (``profiler ms``), so both instruments see the GPU in
the same power state.  ``b2b ms`` is the profiler over calls back to back with
no gap, beside attnperf's back-to-back view (``sustained ms``): an H100 at its
power cap runs a few per cent slower there, which is a different power state,
not a timing error.  Prints a table and writes JSON to argv[1].  Also checks
that the dispatch provenance names the kernel the profiler saw.
"""

import json
import math
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from attnperf.measure.session import Bench
from attnperf.measure.timing import Budget
from attnperf.model.catalog import PRESETS

KERNELS = ["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "sdpa_math", "naive", "tiled"]
PROBLEMS = ["seed", "train"]
CALLS = 20
ROUNDS = 3


def _cuda_kernels(prof):
    out = []
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            dur = ev.device_time if hasattr(ev, "device_time") else ev.cuda_time
            out.append((ev.time_range.start, dur, ev.name))
    return sorted(out)


def _top(kernels):
    names = {}
    for _, dur, name in kernels:
        names[name] = names.get(name, 0) + dur
    return [n[:60] for n, _ in sorted(names.items(), key=lambda kv: -kv[1])[:3]]


def kernel_time_back_to_back(bench):
    for _ in range(3):
        bench.call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            bench.call()
        torch.cuda.synchronize()
    kernels = _cuda_kernels(prof)
    return sum(d for _, d, _ in kernels) / CALLS / 1e3, _top(kernels)


def kernel_time_gap_warm(bench, gap_s, per_call_s, samples=7):
    """Median per-call kernel time over ``samples`` samples, each after ``gap_s`` of host
    idle and ~2 ms of untimed warm calls, then ~2 ms of profiled calls (attnperf's protocol)."""
    n = max(1, min(200, math.ceil(2e-3 / per_call_s)))
    for _ in range(3):
        bench.call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(samples):
            torch.cuda.synchronize()
            time.sleep(gap_s)
            for _ in range(2 * n):  # n warm calls, then n timed ones
                bench.call()
        torch.cuda.synchronize()
    kernels = _cuda_kernels(prof)
    per_call = len(kernels) // (samples * 2 * n)
    if per_call == 0:
        raise RuntimeError(f"the profiler recorded {len(kernels)} kernels over {samples * 2 * n} calls "
                           "(events dropped?)")
    if per_call * samples * 2 * n != len(kernels):
        raise RuntimeError(f"{len(kernels)} kernels over {samples * 2 * n} calls: not a whole number per call")
    sample_ms = []
    for i in range(samples):
        start = (2 * i + 1) * n * per_call  # the timed half of sample i
        sample_ms.append(sum(d for _, d, _ in kernels[start:start + n * per_call]) / n / 1e3)
    return statistics.median(sample_ms), _top(kernels)


rows = []
for pname in PROBLEMS:
    problem = PRESETS[pname]
    for kname in KERNELS:
        try:
            b = Bench(kname, problem, "cuda")
            corr = b.check()
            # Alternate the two measurements (3 rounds each) so that a GPU clock
            # drift between two moments does not pass for a timing error.
            devs, profs, sust, b2bs = [], [], [], []
            for _ in range(ROUNDS):
                samples = b.time_samples(Budget(budget_s=0.5))
                devs.append(samples.median_s * 1e3)
                if samples.sustained is not None:
                    sust.append(samples.sustained.median_s * 1e3)
                gap = 5e-3 if samples.gap_s is None else samples.gap_s  # None: not gap-warm
                prof_ms, top = kernel_time_gap_warm(b, gap, samples.median_s)
                profs.append(prof_ms)
                b2bs.append(kernel_time_back_to_back(b)[0])
            dev, prof_ms = statistics.median(devs), statistics.median(profs)
            rows.append({"kernel": kname, "problem": problem.id, "device_ms": dev,
                         "profiler_ms": prof_ms, "ratio": dev / prof_ms, "dispatch": b.dispatch(), "method": samples.method,
                         "gap_s": samples.gap_s, "sustained_ms": statistics.median(sust) if sust else None,
                         "profiler_b2b_ms": statistics.median(b2bs),
                         "top_kernels": top, "rel_error": corr.rel_error, "passed": corr.passed})
            b.release()
        except Exception as exc:  # noqa: BLE001 - a diagnostic script reports and goes on
            rows.append({"kernel": kname, "problem": problem.id, "error": str(exc)[:200]})
print(f"{'kernel':15s} {'problem':24s} {'attnperf ms':>12s} {'profiler ms':>12s} {'ratio':>7s} "
      f"{'sustained ms':>12s} {'b2b ms':>9s} {'ratio':>7s}  dispatch / top kernel")
for r in rows:
    if "error" in r:
        print(f"{r['kernel']:15s} {r['problem']:24s} error: {r['error']}")
    else:
        sus = r["sustained_ms"] or float("nan")
        print(f"{r['kernel']:15s} {r['problem']:24s} {r['device_ms']:12.4f} {r['profiler_ms']:12.4f} "
              f"{r['ratio']:7.3f} {sus:12.4f} {r['profiler_b2b_ms']:9.4f} {sus / r['profiler_b2b_ms']:7.3f}  "
              f"{r['method']} {r['dispatch']} / {r['top_kernels'][0] if r['top_kernels'] else ''}")
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as fh:
        json.dump(rows, fh, indent=2)
