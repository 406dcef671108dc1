#!/usr/bin/env bash
# Device call 2 of session 7 (nvidia-h100-x2), after the capture/eager/memory fixes and
# triton_flash joining the default grid.
#   GPU0  triton_variants (256-row tiles) -> passes_check -> ci bench de-tuned Triton -> placement (fp32 causal)
#   GPU1  ci bench A/A of the whole default GPU suite (cost, nothing flagged)
# Everything comes back in one archive (the transfer returns a limited number of files).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/r; mkdir -p $R/v0 $R/v1
source tools/gpu/device_env.sh $R/gpu.txt
T=${T:-560}; T0=$(date +%s)
left() { echo $(( T - ($(date +%s) - T0) )); }
( OUT=$R/v1 WORK=/tmp/vc1 timeout $((T-5)) bash tools/gpu/verdict_check.sh 1:aa > $R/v1/run.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=0 TRITON_CACHE_DIR=/tmp/tc0
  timeout 120 python3 tools/gpu/triton_variants.py $R/variants.json > $R/variants.txt 2>&1; echo "rc=$?" >> $R/variants.txt
  timeout 230 python3 tools/gpu/passes_check.py --out $R > $R/passes.txt 2>&1; echo "rc=$?" >> $R/passes.txt
  unset CUDA_VISIBLE_DEVICES TRITON_CACHE_DIR
  OUT=$R/v0 WORK=/tmp/vc0 timeout $(( $(left) - 60 )) bash tools/gpu/verdict_check.sh 0:abtri > $R/v0/run.txt 2>&1
  CUDA_VISIBLE_DEVICES=0 timeout $(( $(left) - 8 )) python3 tools/gpu/placement_check.py $R/placement.json > $R/placement.txt 2>&1; echo "rc=$?" >> $R/placement.txt
) &
wait
tar czf "$OUT/r.tgz" -C $R . 2>/dev/null
for f in $R/variants.txt $R/passes.txt $R/placement.txt $R/v0/verdicts.txt $R/v1/verdicts.txt; do echo "=== $f"; tail -n 30 "$f" 2>/dev/null | cut -c1-200; done | tail -c 11000
