#!/usr/bin/env bash
# Device call 3 of session 7 (nvidia-h100-x1): the whole default GPU suite A/A through
# `attnperf ci bench` (cost, nothing flagged) with this session's timing fixes, then
# with the time left the Triton kernel beside cuDNN and flash SDPA (fwd, fwd+bwd) at
# 4,16,2048,128 and 2,32,8192,128 causal, each config in its own worker (attnperf run).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/r; mkdir -p $R/v1
source tools/gpu/device_env.sh $R/gpu.txt
T=${T:-585}; T0=$(date +%s)
left() { echo $(( T - ($(date +%s) - T0) )); }
OUT=$R/v1 WORK=/tmp/vc1 timeout 420 bash tools/gpu/verdict_check.sh 0:aa > $R/v1/run.txt 2>&1
if [ -n "${ABTRI:-}" ]; then
  mkdir -p $R/v0; OUT=$R/v0 WORK=/tmp/vc0 timeout $(( $(left) - 15 )) bash tools/gpu/verdict_check.sh 0:abtri > $R/v0/run.txt 2>&1
  tar czf "$OUT/r.tgz" -C $R . 2>/dev/null; cat $R/v1/verdicts.txt $R/v0/verdicts.txt | grep -vE "^\| +[+-]? +\| [0-9.e-]+ " | tail -c 9000; exit 0
fi
for shape in "--batch 4 --heads 16 --seq 2048" "--batch 2 --heads 32 --seq 8192 --causal"; do
  [ "$(left)" -gt 30 ] || break
  timeout $(( $(left) - 10 )) python3 -m attnperf run --device cuda --kernel triton_flash,sdpa_cudnn,sdpa_flash \
    $shape --dim 128 --dtype bf16 --pass fwd,fwd+bwd --no-latency --timeout-s 200 >> $R/triton_run.txt 2>&1
done
tar czf "$OUT/r.tgz" -C $R . 2>/dev/null
for f in $R/v1/verdicts.txt $R/triton_run.txt; do echo "=== $f"; grep -vE "^\| +[+-]? +\| [0-9.e-]+ " "$f" 2>/dev/null | tail -n 40 | cut -c1-220; done | tail -c 11000
