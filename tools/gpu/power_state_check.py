"""Does power-state control make GPU device time reproducible?  (H100 check, < 4 min)

Part A, one process: cuDNN SDPA through the default dispatch (kernel ``sdpa``)
at four problems, ``--rounds`` rounds of the asv suite's production sampling
(``attnperf.asv.suite.ASV_BUDGET``) under each protocol, interleaved:

  b2b       replays back to back (attnperf before power-state control)
  fixed5    5 ms gap + one untimed replay + one timed replay (FACTS.md "gapwarm")
  gap-warm  attnperf's default PowerControl (gap scaled with the work, warm and
            timed parts of >= 2 ms each, slowdown samples retaken)

Per problem and protocol: the round-median spread (max/min of the round
medians), the within-round spread (median over rounds of max/min of the
samples), the median, the SM clocks seen (NVML), samples retaken, unsteady
rounds, and the wall time of one measurement (its cost in the suite).  The
sustained (back-to-back) view that gap-warm takes as well is shown too.

Part B: ``--procs`` separate ``attnperf run --kernel sdpa_cudnn`` processes at
4,16,2048,128 bf16: max/min of their medians (target <= 1.01) and the SM
clocks they saw.

Also: the cost of one NVML clock reading (the timing loop makes one per sample).
Part C (``--grid``, ~1 min more): the default asv grid measured once, as asv's
setup_cache does per commit: its wall time, samples, retakes and unsteady
combinations -- the variable part of a 2-commit ``asv continuous``.

NVML comes from nvidia-ml-py; on a host without network, bring its wheel
(``pip download --no-deps nvidia-ml-py -d tools/gpu/wheels``): a pure-Python
wheel found in tools/gpu/wheels/, shared/wheels/ or ../shared/wheels/ is put on
the path of this process and of the ``attnperf run`` processes.

Usage (repository root, a CUDA PyTorch):  python tools/gpu/power_state_check.py
Writes power_state_check.{json,txt} (and the run reports) to $OUT when set.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEEL_DIRS = [ROOT / "tools/gpu/wheels", ROOT / "shared/wheels", ROOT.parent / "shared/wheels"]


def _extra_paths():
    paths = [str(ROOT / "src")]
    for d in WHEEL_DIRS:
        paths += sorted(glob.glob(str(d / "nvidia_ml_py-*.whl")))[-1:]
    return paths


for _p in reversed(_extra_paths()):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch  # noqa: E402

from attnperf.asv.suite import ASV_BUDGET  # noqa: E402
from attnperf.measure import nvml  # noqa: E402
from attnperf.measure.session import Bench, warm_up_gpu  # noqa: E402
from attnperf.measure.timing import (BACK_TO_BACK_POWER, POWER, PowerControl,  # noqa: E402
                                     time_cuda_device)
from attnperf.model.problem import Problem  # noqa: E402

PROBLEMS = {
    "seed 8,4,64,64 fp16": Problem(batch=8, heads=4, seq_q=64, head_dim=64, dtype="float16"),
    "causal 1,8,512,64 bf16": Problem(batch=1, heads=8, seq_q=512, head_dim=64, causal=True,
                                      dtype="bfloat16"),
    "mid 2,8,1024,64 bf16": Problem(batch=2, heads=8, seq_q=1024, head_dim=64, dtype="bfloat16"),
    "train 4,16,2048,128 bf16": Problem(batch=4, heads=16, seq_q=2048, head_dim=128,
                                        dtype="bfloat16"),
}
FIXED5 = PowerControl(gap_ratio=0.0, gap_min_s=5e-3, gap_max_s=5e-3, warm_s=0.0, sample_s=0.0,
                      sustained=False)
MODES = {"b2b": BACK_TO_BACK_POWER, "fixed5": FIXED5, "gap-warm": POWER}


def spread(xs):
    return max(xs) / min(xs) if xs and min(xs) > 0 else float("nan")


def clocks_of(samples):
    return [c for c in (samples.sm_clocks_mhz() or []) if c is not None]


def part_a(rounds: int) -> list:
    benches = {name: Bench("sdpa", p, "cuda") for name, p in PROBLEMS.items()}
    rec = {(name, mode): [] for name in PROBLEMS for mode in list(MODES) + ["sustained"]}
    for r in range(rounds):
        for name, bench in benches.items():
            for mode, power in MODES.items():
                t0 = time.perf_counter()
                s = time_cuda_device(bench.call, ASV_BUDGET, power=power)
                wall = time.perf_counter() - t0
                rec[(name, mode)].append((s, wall))
                if s.sustained is not None:
                    rec[(name, "sustained")].append((s.sustained, wall))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    rows = []
    for (name, mode), runs in rec.items():
        if not runs:
            continue
        medians = [s.median_s for s, _ in runs]
        mhz = [c for s, _ in runs for c in clocks_of(s)]
        first = runs[0][0]
        rows.append({
            "problem": name, "mode": mode,
            "round_spread": spread(medians),
            "within_spread": statistics.median(spread(s.samples_s) for s, _ in runs),
            "median_us": statistics.median(medians) * 1e6,
            "round_medians_us": [m * 1e6 for m in medians],
            "samples_per_round": statistics.median(len(s.samples_s) for s, _ in runs),
            "sm_mhz": [min(mhz), max(mhz)] if mhz else None,
            "slowdown_samples": sum(s.slowdown_samples for s, _ in runs),
            "retaken": sum(s.retaken for s, _ in runs),
            "unsteady_rounds": sum(s.unsteady for s, _ in runs),
            "unsteady_reasons": [s.unsteady_reason for s, _ in runs if s.unsteady],
            "gap_ms": first.gap_s * 1e3 if first.gap_s is not None else None,
            "warm_replays": first.warm_replays, "replays_per_sample": first.replays_per_sample,
            "calls_per_sample": first.calls_per_sample,
            "wall_s_per_measurement": statistics.median(w for _, w in runs),
        })
    return rows


def nvml_cost() -> dict:
    read = nvml.clock_reader(str(getattr(torch.cuda.get_device_properties(0), "uuid", "")) or None, 0)
    if read is None:
        return {"available": False}
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        read()
    return {"available": True, "us_per_reading": (time.perf_counter() - t0) / n * 1e6,
            "reading": repr(read())}


def part_b(procs: int, out: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(_extra_paths() + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    medians, clocks, runs = [], [], []
    for i in range(procs):
        report = out / f"run_train_cudnn_{i}.json"
        cmd = [sys.executable, "-m", "attnperf", "run", "--device", "cuda", "--kernel", "sdpa_cudnn",
               "--batch", "4", "--heads", "16", "--seq", "2048", "--dim", "128", "--dtype", "bf16",
               "--no-latency", "--output", str(report)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            runs.append({"rc": proc.returncode, "stderr_tail": proc.stderr[-600:]})
            continue
        dt = json.loads(report.read_text())["results"][0]["performance"]["device_time"]
        mhz = [c for c in dt.get("sm_clock_mhz") or [] if isinstance(c, (int, float))]
        medians.append(dt["median_ms"] * 1e3)
        clocks += mhz
        runs.append({"median_us": dt["median_ms"] * 1e3, "n": dt["n"], "gap_ms": dt.get("gap_ms"),
                     "retaken": dt.get("retaken"), "unsteady": dt.get("unsteady"),
                     "sm_mhz": [min(mhz), max(mhz)] if mhz else dt.get("sm_clock_mhz"),
                     "wall_s": wall})
    return {"medians_us": medians, "max_over_min": spread(medians) if medians else None,
            "sm_mhz": [min(clocks), max(clocks)] if clocks else "unavailable", "runs": runs}


def part_c() -> dict:
    from attnperf.asv import suite

    t0 = time.perf_counter()
    cache = suite.measure_grid(device_name="cuda")
    wall = time.perf_counter() - t0
    entries = [e for k, e in cache.items() if not k.startswith("__")]
    ok = [e for e in entries if e["status"] == "ok"]
    return {"wall_s": wall, "combinations": len(entries), "ok": len(ok),
            "samples": sum(len(e["device_time_s"]) for e in ok),
            "retaken": sum(e.get("retaken", 0) for e in ok),
            "unsteady": [f"{k}: {e['unsteady_reason']}" for k, e in cache.items()
                         if not k.startswith("__") and e.get("unsteady")]}


def table(rows, procs, cost) -> str:
    head = f"{'problem':26} {'mode':9} {'rounds':>7} {'within':>7} {'median us':>10} " \
           f"{'SM MHz':>10} {'slow':>5} {'retake':>6} {'unst':>4} {'gap ms':>6} {'w+r':>7} {'s/meas':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        mhz = f"{r['sm_mhz'][0]}-{r['sm_mhz'][1]}" if r["sm_mhz"] else "n/a"
        gap = f"{r['gap_ms']:.2f}" if r["gap_ms"] is not None else "-"
        wr = f"{r['warm_replays']}+{r['replays_per_sample']}" if r["mode"] not in ("b2b", "sustained") else "-"
        lines.append(f"{r['problem']:26} {r['mode']:9} {100 * (r['round_spread'] - 1):6.2f}% "
                     f"{r['within_spread']:7.3f} {r['median_us']:10.2f} {mhz:>10} "
                     f"{r['slowdown_samples']:5d} {r['retaken']:6d} {r['unsteady_rounds']:4d} "
                     f"{gap:>6} {wr:>7} {r['wall_s_per_measurement']:6.2f}")
    lines.append("rounds = max/min of the round medians - 1; within = median over rounds of the "
                 "samples' max/min; slow = samples under power/thermal slowdown kept; "
                 "w+r = warm + timed replays per sample; s/meas = wall time of one measurement")
    lines.append(f"NVML reading: {cost}")
    if procs:
        lines.append(f"{len(procs['medians_us'])} processes, attnperf run sdpa_cudnn train: medians "
                     f"{', '.join(f'{m:.2f}' for m in procs['medians_us'])} us; max/min "
                     f"{procs['max_over_min'] or float('nan'):.4f} (target <= 1.01); SM {procs['sm_mhz']} MHz")
        for i, run in enumerate(procs["runs"]):
            lines.append(f"  process {i}: {run}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=5, help="attnperf run processes (0: skip part B)")
    ap.add_argument("--grid", action="store_true", help="also time the default asv grid (part C)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device", file=sys.stderr)
        return 2
    out = Path(os.environ.get("OUT") or "/tmp/attnperf-power-state")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, start clock "
          f"{nvml.gpu_clock_state()}", file=sys.stderr)
    warm_up_gpu(1.0)
    cost = nvml_cost()
    rows = part_a(args.rounds)
    procs = part_b(args.procs, out) if args.procs else None
    grid = part_c() if args.grid else None
    text = table(rows, procs, cost)
    if grid is not None:
        text += (f"\nasv grid once (setup_cache of one commit): {grid['wall_s']:.1f} s, "
                 f"{grid['ok']}/{grid['combinations']} ok, {grid['samples']} samples, "
                 f"{grid['retaken']} retaken, unsteady: {grid['unsteady'] or 'none'}")
    text += f"\ntotal {time.perf_counter() - t0:.0f} s"
    print(text)
    (out / "power_state_check.txt").write_text(text + "\n")
    (out / "power_state_check.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "nvml": cost,
         "budget": repr(ASV_BUDGET), "power": repr(POWER), "rows": rows, "processes": procs, "grid": grid},
        indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
