"""Where the GPU suite's setup_cache time goes: measure_grid (what asv's setup_cache
calls) once per kernel over the default grid, forward problems and training passes
separately, with the wall time of each.  Run twice to see the warm Triton cache.
Writes JSON to argv[1].  Run: PYTHONPATH=src python3 tools/gpu/suite_cost.py out.json
"""
import json
import os
import sys
import time

from attnperf.asv import suite


def main():
    rows = []
    for attempt in (1, 2):
        for kernel in suite.GRID_KERNELS:
            for passes in ("fwd", "bwd,fwd+bwd"):
                os.environ["ATTNPERF_ASV_PASSES"] = passes
                problems = None if passes == "fwd" else [p for p in suite.GRID_PASS_PROBLEMS]
                t0 = time.perf_counter()
                out = suite.measure_grid([kernel], problems, device_name="cuda")
                wall = time.perf_counter() - t0
                entries = {k: v for k, v in out.items() if k != "__meta__"}
                if passes != "fwd":
                    entries = {k: v for k, v in entries.items() if "_bwd" in k or "_fwdbwd" in k}
                status = {}
                for v in entries.values():
                    status[v.get("status")] = status.get(v.get("status"), 0) + 1
                methods = sorted({str(v.get("device_time_method")) for v in entries.values()})
                rows.append({"attempt": attempt, "kernel": kernel, "passes": passes, "wall_s": wall,
                             "status": status, "methods": methods})
                print(f"[{attempt}] {kernel:15s} {passes:12s} {wall:6.1f} s  {status}  {methods}", flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
