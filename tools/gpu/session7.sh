#!/usr/bin/env bash
# Device call 1 of session 7 (nvidia-h100-x4): four independent pipelines, one per GPU.
#   GPU0  tools/gpu/triton_variants.py     Triton forward variants vs cuDNN (issue 11 speed)
#   GPU1  tools/gpu/passes_check.py        fwd/bwd/fwd+bwd timing + gradient gate, Triton vs SDPA
#   GPU2  placement_check, accmem_check, profiler_check   (issue 8 fp32-causal wander, issue 11 items 4-5)
#   GPU3  verdict_check.sh aa              A/A of the whole current GPU suite: cost + nothing flagged
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source tools/gpu/device_env.sh "$OUT/gpu.txt"
T=${T:-570}
( export CUDA_VISIBLE_DEVICES=0 TRITON_CACHE_DIR=/tmp/tc0
  timeout $((T-15)) python3 tools/gpu/triton_variants.py "$OUT/variants.json" > "$OUT/variants.txt" 2>&1; echo "rc=$?" >> "$OUT/variants.txt" ) &
( export CUDA_VISIBLE_DEVICES=1 TRITON_CACHE_DIR=/tmp/tc1
  timeout $((T-15)) python3 tools/gpu/passes_check.py --out "$OUT" > "$OUT/passes.txt" 2>&1; echo "rc=$?" >> "$OUT/passes.txt" ) &
( export CUDA_VISIBLE_DEVICES=2 TRITON_CACHE_DIR=/tmp/tc2
  timeout 150 python3 tools/profiler_check.py "$OUT/profiler.json" > "$OUT/profiler.txt" 2>&1; echo "rc=$?" >> "$OUT/profiler.txt"
  timeout 250 python3 tools/gpu/placement_check.py "$OUT/placement.json" > "$OUT/placement.txt" 2>&1; echo "rc=$?" >> "$OUT/placement.txt"
  timeout $((T-415)) python3 tools/gpu/accmem_check.py > "$OUT/accmem.txt" 2>&1; echo "rc=$?" >> "$OUT/accmem.txt" ) &
( WORK=/tmp/vc timeout $((T-10)) bash tools/gpu/verdict_check.sh 3:aa > "$OUT/verdict_run.txt" 2>&1 ) &
wait
cd /tmp/vc 2>/dev/null && tar czf "$OUT/verdict_logs.tgz" summary.txt gpu*/*.log gpu*/out-* 2>/dev/null
cd "$OLDPWD"
for f in variants passes placement accmem profiler verdicts; do echo "=== $f"; tail -n 25 "$OUT/$f.txt" 2>/dev/null | cut -c1-220; done
