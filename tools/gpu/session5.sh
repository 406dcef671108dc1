#!/usr/bin/env bash
# Device call of session 5 (nvidia-h100-x2): verdict pipelines on both GPUs (PIPES), the
# restructure A/A on the host CPU.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source tools/gpu/device_env.sh "$OUT/gpu.txt"
T=${T:-540}
( timeout $((T-20)) bash tools/gpu/restructure_aa.sh > "$OUT/restructure_summary.txt" 2>&1 ) &
WORK=/tmp/vc timeout $((T-10)) bash tools/gpu/verdict_check.sh ${PIPES:-0:aa,ab5 1:cal} > "$OUT/verdict_run.txt" 2>&1 &
sleep 1; wait
cd /tmp/vc 2>/dev/null && { cat summary.txt; for f in gpu*/*.log; do echo "=== $f"; grep -E "^\|? *[+-] |BENCHMARKS|egression|rror|hreshold|verdict|flagged" "$f" | tail -n 60; done; } > "$OUT/verdicts.txt" 2>&1
cd /tmp/vc 2>/dev/null && tar czf "$OUT/verdict_logs.tgz" summary.txt gpu*/*.log gpu*/out-* gpu*/thresholds.json 2>/dev/null
cat "$OUT/restructure_summary.txt" "$OUT/verdicts.txt" 2>/dev/null | tail -c 11000
