"""Developer check: how noisy are wall time and thread CPU time for the CPU grid under load?

Runs ``--procs`` fresh processes one after another (as asv's rounds do); each
measures every CPU combination of the suite's grid single-threaded, and every
sample is read with three clocks at once: wall (``perf_counter``), the
measuring thread's CPU time (``CLOCK_THREAD_CPUTIME_ID``) and the process's
CPU time (all threads: if torch handed work to other threads at 1 thread,
process CPU would exceed thread CPU).  ``--busy spin`` keeps one core busy
with an unrelated Python loop meanwhile (``--busy-core N`` pins it).

Prints per combination: the spread of the per-process medians (max/min, the
largest A/A ratio those processes could show) for wall and thread time, the
median within-process IQR/median, and process/thread CPU.  Also prints the
load average before and after.

    .venv/bin/python tools/cpu_clock_check.py --procs 5 --busy spin
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from attnperf.asv.suite import fits_device
from attnperf.kernels import registry
from attnperf.model.catalog import PRESETS
from attnperf.measure.session import Bench
pin = int(sys.argv[1]); n_samples = int(sys.argv[2]); sample_s = float(sys.argv[3])
if sys.argv[4] == "1":  # fixed glibc thresholds: no mmap/trim per call (page faults)
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 30); libc.mallopt(-1, 1 << 30)
if pin >= 0:
    os.sched_setaffinity(0, {pin})
out = {}
ra = torch.randn(256, 256); rb = torch.randn(256, 256)
src = torch.randn(2 << 20); dst = torch.empty_like(src)
def ref_mm():
    t = time.thread_time_ns()
    for _ in range(2):
        torch.mm(ra, rb)
    return time.thread_time_ns() - t
def ref_copy():
    t = time.thread_time_ns()
    for _ in range(2):
        dst.copy_(src)
    return time.thread_time_ns() - t
for pname in ("cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa"):
    p = PRESETS[pname]
    for k in ("sdpa", "sdpa_flash", "sdpa_efficient", "sdpa_math", "naive", "tiled"):
        try:
            b = Bench(k, p, "cpu")
        except Exception:
            continue
        b.check()
        fn = b.call
        t0 = time.perf_counter(); warm = 0
        while warm < 2 or time.perf_counter() - t0 < 0.05:
            fn(); warm += 1
        number = max(1, int(sample_s / ((time.perf_counter() - t0) / warm)))
        wall, thread, proc, rmm, rcp = [], [], [], [], []
        rmm.append(ref_mm())
        for _ in range(n_samples):
            w0, t0_, p0 = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
            for _ in range(number):
                fn()
            w1, t1, p1 = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
            wall.append((w1 - w0) / number / 1e9)
            thread.append((t1 - t0_) / number / 1e9)
            proc.append((p1 - p0) / number / 1e9)
            rmm.append(ref_mm())
        out[f"{k}|{pname}"] = {"wall": wall, "thread": thread, "proc": proc, "number": number,
                               "ref_mm": rmm, "ref_copy": rcp}
        b.release()
print(json.dumps(out))
"""


def iqr_ratio(xs):
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / statistics.median(xs)


def normalised(r):
    """Thread time per call over the mean of the reference bursts on either side."""
    ref = r["ref_mm"]
    return [t / ((a + b) / 2) for t, a, b in zip(r["thread"], ref, ref[1:])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=5)
    ap.add_argument("--busy", choices=("none", "spin"), default="spin")
    ap.add_argument("--busy-core", type=int, default=-1, help="pin the busy loop to this core")
    ap.add_argument("--pin", type=int, default=-1, help="pin the measuring process to this core")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--sample-s", type=float, default=2e-3)
    ap.add_argument("--mallopt", action="store_true", help="fixed glibc malloc thresholds")
    ap.add_argument("--json", help="write the raw per-process results here")
    args = ap.parse_args(argv)

    busy = None
    if args.busy == "spin":
        code = ("import os,sys\nc=int(sys.argv[1])\n"
                "if c>=0: os.sched_setaffinity(0,{c})\nwhile True: pass\n")
        busy = subprocess.Popen([sys.executable, "-c", code, str(args.busy_core)])
    load0 = os.getloadavg()
    runs = []
    try:
        for i in range(args.procs):
            t0 = time.time()
            res = subprocess.run([sys.executable, "-c", CHILD, str(args.pin), str(args.samples),
                                  str(args.sample_s), "1" if args.mallopt else "0"], capture_output=True, text=True, check=True)
            runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"process {i + 1}/{args.procs}: {time.time() - t0:.0f} s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    load1 = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(runs, fh)
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f}, after {load1[0]:.2f} {load1[1]:.2f}; "
          f"busy={args.busy} busy_core={args.busy_core} pin={args.pin}")
    print(f"{'combination':34s} {'wall spread':>11s} {'thread spread':>13s} {'norm spread':>11s} "
          f"{'wall IQR%':>9s} {'thr IQR%':>8s} {'proc/thr':>8s} {'thr/wall':>8s}")
    ws, ts, ns = [], [], []
    for key in runs[0]:
        wall_m = [statistics.median(r[key]["wall"]) for r in runs]
        thr_m = [statistics.median(r[key]["thread"]) for r in runs]
        norm_m = [statistics.median(normalised(r[key])) for r in runs]
        w_sp, t_sp = max(wall_m) / min(wall_m), max(thr_m) / min(thr_m)
        n_sp = max(norm_m) / min(norm_m)
        ns.append(n_sp)
        ws.append(w_sp)
        ts.append(t_sp)
        w_iqr = statistics.median(iqr_ratio(r[key]["wall"]) for r in runs) * 100
        t_iqr = statistics.median(iqr_ratio(r[key]["thread"]) for r in runs) * 100
        pt = statistics.median(sum(r[key]["proc"]) / sum(r[key]["thread"]) for r in runs)
        tw = statistics.median(sum(r[key]["thread"]) / sum(r[key]["wall"]) for r in runs)
        print(f"{key:34s} {w_sp:11.3f} {t_sp:13.3f} {n_sp:11.3f} {w_iqr:9.1f} {t_iqr:8.1f} {pt:8.3f} {tw:8.3f}")
    print(f"spread of medians, wall: min {min(ws):.3f} median {statistics.median(ws):.3f} "
          f"max {max(ws):.3f}; thread: min {min(ts):.3f} median {statistics.median(ts):.3f} "
          f"max {max(ts):.3f}; normalised: min {min(ns):.3f} median {statistics.median(ns):.3f} "
          f"max {max(ns):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
