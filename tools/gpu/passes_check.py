"""GPU check of the training passes (issue 11 items 2 and 3), through attnperf's own measurement.

Run from the repository root on a CUDA host (torch 2.11, Triton 3.6):

    PYTHONPATH=/tmp/site:$PWD/src python tools/gpu/passes_check.py [--out DIR]

For cuDNN / flash / efficient SDPA and triton_flash at 4,16,2048,128 bf16 and
2,32,8192,128 bf16 causal it prints, per pass (fwd, bwd, fwd+bwd): status,
device time (median, CUDA-graph replays under the gap-warm power protocol),
TF/s (FLOPs 1x / 2.5x / 3.5x the forward's), roofline efficiency, the output's
rel_error and dQ/dK/dV rel_error against float64 autograd.  Then, for bwd, the
graph-captured device time beside eager event timing of the same calls
(``capture=False``), their ratio, and the timing method each used.

Pass: every available config is ``ok`` (gradient gate passed) and every
graph/eager ratio of bwd lies within 0.95..1.05 (``PASS`` at the end; ``FAIL``
lines name what did not).  A JSON copy goes to $OUT (or --out) as passes_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from attnperf.measure.ceilings import load_or_measure_ceilings
from attnperf.measure.device import fingerprint
from attnperf.measure.session import Bench, measure, warm_up_gpu
from attnperf.measure.timing import Budget
from attnperf.model.catalog import PRESETS
from attnperf.model.peaks import match_peak

KERNELS = ["sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "triton_flash"]
PROBLEMS = [PRESETS["train"], PRESETS["train_long_causal"]]
PASSES = ["fwd", "bwd", "fwd+bwd"]
AGREE = 0.05  # graph vs eager: within 5 %


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--budget-s", type=float, default=0.3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    env = fingerprint("cuda")
    ceilings = load_or_measure_ceilings("cuda", env)
    peak = match_peak(env["gpu_name"])
    print(f"{env['gpu_name']}, torch {env['torch']}, ceilings {ceilings.get('matmul_tflops')}")
    warm_up_gpu()
    budget = Budget(budget_s=args.budget_s)
    rows, failures = [], []
    for problem in PROBLEMS:
        for kernel in KERNELS:
            for mode in PASSES:
                p = problem.with_pass(mode)
                m = measure(kernel, p, "cuda", ceiling_data=ceilings, peak=peak, budget=budget,
                            latency=False)
                rf, dt = m.roofline, m.device_time
                grads = {n: c.rel_error for n, c in (m.gradients or {}).items()}
                row = {"kernel": kernel, "problem": p.id, "pass": mode, "status": m.status,
                       "reason": m.reason, "time_ms": dt.median_s * 1e3 if dt else None,
                       "method": dt.method if dt else None,
                       "tflops": rf.achieved_tflops if rf else None,
                       "efficiency_pct": rf.efficiency_pct if rf else None,
                       "rel_error": m.correctness.rel_error if m.correctness else None,
                       "grad_rel_error": grads}
                rows.append(row)
                print(f"{kernel:15s} {p.id:42s} {m.status:11s} time {_fmt(row['time_ms'], '.4f')} ms "
                      f"TF/s {_fmt(row['tflops'], '.1f')} eff {_fmt(row['efficiency_pct'], '.1f')} % "
                      f"out {_fmt(row['rel_error'], '.1e')} "
                      + " ".join(f"{n} {v:.1e}" for n, v in grads.items())
                      + (f" [{dt.method}]" if dt else "")
                      + (f"  ({m.reason})" if m.status != "ok" else ""), flush=True)
                if m.status not in ("ok", "unavailable", "skipped"):
                    failures.append(f"{kernel}/{p.id}: {m.status}: {m.reason}")
            # Graph-captured vs eager event timing of the same bwd calls.
            bench = None
            try:
                bench = Bench(kernel, problem.with_pass("bwd"), "cuda")
                c = bench.check()
                if bench.wrong(c):
                    continue
                graph = bench.time_samples(budget)
                eager = bench.time_samples(budget, capture=False)
            except Exception as exc:  # noqa: BLE001 - a check script: report and go on
                print(f"{kernel:15s} {problem.id:42s} bwd graph vs eager: {type(exc).__name__}: {exc}")
                continue
            finally:
                if bench is not None:
                    bench.release()
            ratio = graph.median_s / eager.median_s
            ok = abs(ratio - 1) <= AGREE
            rows.append({"kernel": kernel, "problem": problem.with_pass("bwd").id,
                         "graph_ms": graph.median_s * 1e3, "graph_method": graph.method,
                         "eager_ms": eager.median_s * 1e3, "eager_method": eager.method,
                         "graph_over_eager": ratio})
            print(f"{kernel:15s} {problem.with_pass('bwd').id:42s} bwd graph {graph.median_s * 1e3:.4f} ms "
                  f"[{graph.method}] eager {eager.median_s * 1e3:.4f} ms [{eager.method}] "
                  f"ratio {ratio:.3f} {'ok' if ok else 'DISAGREE'}", flush=True)
            if not ok:
                failures.append(f"{kernel}/{problem.id} bwd: graph/eager {ratio:.3f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "passes_check.json"), "w") as fh:
        json.dump({"environment": env, "rows": rows, "failures": failures}, fh, indent=1)
    for f in failures:
        print(f"FAIL {f}")
    print(f"{'PASS' if not failures else 'FAIL'} ({time.perf_counter() - t0:.0f} s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
