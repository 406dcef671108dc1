#!/usr/bin/env bash
# One device call for the core library: env, ceilings, the acceptance sweep,
# the profiler cross-check, the default GPU sweep.  Results under $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/attnperf-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv
python3 -m attnperf env --device cuda | tee "$OUT/env.json"
python3 -m attnperf ceilings --device cuda --refresh
python3 -m attnperf ceilings --device cuda --json > "$OUT/ceilings.json"
python3 -m attnperf run --device cuda --sweep seed-train -o "$OUT/seed-train.json" 2>&1 | tee "$OUT/seed-train.txt"
python3 tools/profiler_check.py "$OUT/profiler.json" 2>&1 | tee "$OUT/profiler.txt"

