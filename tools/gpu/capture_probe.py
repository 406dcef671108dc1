"""Experiment (H100): is the ~2.5 % slow state of flash / memory-efficient SDPA at the train
shape fixed per CUDA-graph capture (where the graph's output and workspace land)?

tools/gpu/state_probe.py: the state flips between measurements *within* a process (each
measurement captures a new graph) while a reference matmul and cuDNN stay put.  Here, per
process, REPS measurements of each kernel, plain (the suite's timing) and `hold` (every call
captured into the graph keeps its output alive, so the graph's calls write to `calls`
different buffers and a sample averages over their placements).  If placement is the cause,
`hold` medians cluster much tighter than plain ones (measured 2026-11-26: they do not).
Next hypotheses: `shared_pool` (every capture into one memory pool, so intermediates and
workspace land at the same addresses each time: if the state then stays put, placement of
the graph's allocations is the cause), `eager` (no graph: does an eager burst show it?) and
`rotate4` (the fix ready in attnperf, Budget.captures=4: the samples take turns over four
captures; if the state is per capture, its medians cluster tighter than plain ones).
JSON to argv[1].
"""
import dataclasses
import json
import statistics
import sys

from probe_procs import fresh_processes

PROCS = 2
REPS = 8
KERNELS = ["sdpa_flash", "sdpa_efficient"]


def child():
    import torch

    from attnperf.asv.suite import ASV_BUDGET_GPU
    from attnperf.measure.session import Bench, warm_up_gpu
    from attnperf.measure.timing import time_cuda_device
    from attnperf.model.catalog import PRESETS

    warm_up_gpu()
    out = {}
    for k in KERNELS:
        b = Bench(k, PRESETS["train"], "cuda")
        b.check()
        held = []

        def hold(b=b, held=held):
            o = b.call()
            if torch.cuda.is_current_stream_capturing():
                held.append(o)
            return o

        plain, kept, calls, plans = [], [], None, []
        shared, eager, rotate = [], [], []
        rotating = dataclasses.replace(ASV_BUDGET_GPU, captures=4)
        pool = torch.cuda.graph_pool_handle()
        real_graph = torch.cuda.graph

        def pooled_graph(g, stream=None):  # every capture into one pool
            return real_graph(g, pool=pool, stream=stream)

        for _ in range(REPS):
            # (H1) the graph's private pool: the same pool (same addresses) for every capture
            torch.cuda.graph = pooled_graph
            try:
                s = time_cuda_device(b.call, ASV_BUDGET_GPU)
            finally:
                torch.cuda.graph = real_graph
            shared.append(statistics.median(s.samples_s) * 1e6)
            # (H4) no graph at all: eager bursts behind a spin kernel
            s = time_cuda_device(b.call, ASV_BUDGET_GPU, capture=False)
            eager.append(statistics.median(s.samples_s) * 1e6)
            # (fix) the samples take turns over four captures
            s = time_cuda_device(b.call, rotating)
            rotate.append(statistics.median(s.samples_s) * 1e6)
            s = time_cuda_device(b.call, ASV_BUDGET_GPU)
            plain.append(statistics.median(s.samples_s) * 1e6)
            plans.append((s.calls_per_sample // s.replays_per_sample, s.warm_replays, s.replays_per_sample,
                          round(s.gap_s * 1e3, 2)))
            held.clear()
            s = time_cuda_device(hold, ASV_BUDGET_GPU)
            kept.append(statistics.median(s.samples_s) * 1e6)
            calls = s.calls_per_sample
        out[k] = {"plain": plain, "hold": kept, "shared_pool": shared, "eager": eager,
                  "rotate4": rotate,
                  "calls_per_sample": calls, "plans": plans}
        b.release()
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child()))
        return
    procs = fresh_processes(__file__, PROCS, 200)
    for i, r in enumerate(procs):
        for k, v in r.items():
            if k == "error":
                print(i, v)
                continue
            for mode in ("plain", "hold", "shared_pool", "eager", "rotate4"):
                xs = v[mode]
                print(f"proc {i} {k:15s} {mode:5s} calls/sample {v['calls_per_sample']:3d}  max/min {max(xs) / min(xs):.4f}  "
                      + " ".join(f"{x:7.1f}" for x in xs))
            print("   plans (calls/graph, warm, timed replays, gap ms):", v["plans"])
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as fh:
            json.dump(procs, fh, indent=1)


if __name__ == "__main__":
    main()
