"""Experiment (H100): the ~2.5 % per-process "slow state" at the train shape.

The session-10 A/A sets of the whole suite read flash SDPA at 4,16,2048,128 bf16 at
either ~391 or ~401 us per process (round), memory-efficient at ~798 or ~818 us, and
`attnperf run` saw cuDNN at 211.7 vs 217 us in the first samples of a process -- the
same ~2.5 % each time, NVML reporting 1980 MHz and no slowdown reason.  Question: does
a fixed reference kernel (a bf16 matmul, same power protocol) move with it?  If yes, the
state is the GPU's and a reference measured beside each sample can detect (retake) or
normalise it; if not, it is per kernel/process.

PROCS fresh processes; in each, ROUNDS x (reference, flash, efficient, cuDNN), each timed
by attnperf's device timing with the suite's GPU budget; per measurement the median and
NVML's SM and memory clocks, power and temperature right after.  Prints a table; JSON to
argv[1].  Run: PYTHONPATH=src python3 tools/gpu/state_probe.py out.json
"""
import json
import statistics
import sys

from probe_procs import fresh_processes

PROCS = 8
ROUNDS = 3
KERNELS = ["sdpa_flash", "sdpa_efficient", "sdpa_cudnn"]


def child():
    import pynvml
    import torch

    from attnperf.asv.suite import ASV_BUDGET_GPU
    from attnperf.measure.session import Bench, warm_up_gpu
    from attnperf.measure.timing import time_cuda_device
    from attnperf.model.catalog import PRESETS

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)

    def nv():
        return {"sm": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                "mem": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                "w": pynvml.nvmlDeviceGetPowerUsage(h) / 1e3,
                "t": pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)}

    warm_up_gpu()
    a = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
    benches = {k: Bench(k, PRESETS["train"], "cuda") for k in KERNELS}
    for b in benches.values():
        b.check()
    out = []
    for r in range(ROUNDS):
        for name, fn in [("ref_matmul", lambda: torch.matmul(a, a))] + [(k, b.call) for k, b in benches.items()]:
            s = time_cuda_device(fn, ASV_BUDGET_GPU)
            out.append({"round": r, "kernel": name, "median_us": statistics.median(s.samples_s) * 1e6,
                        "n": len(s.samples_s), **nv()})
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child()))
        return
    procs = fresh_processes(__file__, PROCS, 120)
    names = ["ref_matmul"] + KERNELS
    print("proc round " + " ".join(f"{n[:10]:>10s}" for n in names) + "   sm  mem   W   C")
    for i, rows in enumerate(procs):
        if isinstance(rows, dict):
            print(i, rows["error"])
            continue
        for r in range(ROUNDS):
            cells = {x["kernel"]: x for x in rows if x["round"] == r}
            last = cells[names[-1]]
            print(f"{i:4d} {r:5d} " + " ".join(f"{cells[n]['median_us']:10.2f}" for n in names)
                  + f" {last['sm']:4d} {last['mem']:4d} {last['w']:4.0f} {last['t']:3d}")
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as fh:
            json.dump(procs, fh, indent=1)


if __name__ == "__main__":
    main()
