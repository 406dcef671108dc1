#!/usr/bin/env bash
# Device call (nvidia-h100-x1) of session 10: the whole default GPU suite through
# `attnperf ci bench` after the cost cuts (20 samples a round on a GPU; cpu_* presets on
# request): A/A then, if the deadline allows, A/B +5 %; with the time left the
# profiler agreement and five `attnperf run` processes of cuDNN SDPA at train.
#   JOBS (default aa,ab5): verdict_check.sh jobs for GPU 0.  EXTRA=0 skips the last part.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/r
# a warm machine keeps /tmp: what the last call's pipeline left (killed before it packed it)
[ -d /tmp/vc1 ] && tar czf "$OUT/prev_vc1.tgz" -C /tmp/vc1 --exclude='*.html' --exclude=master --exclude=repo --exclude=home . 2>/dev/null
rm -rf $R /tmp/vc1; mkdir -p $R/v1
source tools/gpu/device_env.sh $R/gpu.txt
T=${T:-585}; T0=$(date +%s)
left() { echo $(( T - ($(date +%s) - T0) )); }
VC_DEADLINE=$(( T0 + T - ${RESERVE:-20} )) OUT=$R/v1 WORK=/tmp/vc1 \
  timeout $(( T - 4 )) bash tools/gpu/verdict_check.sh "0:${JOBS:-aa,ab5}" > $R/v1/run.txt 2>&1
tar czf "$OUT/vc.tgz" -C /tmp/vc1 --exclude='*.html' summary.txt gpu0/machine.log $(cd /tmp/vc1 && ls -d gpu0/*.log gpu0/out-* 2>/dev/null) 2>/dev/null
if [ "${EXTRA:-1}" = 1 ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 40 )) python3 tools/profiler_check.py $R/profiler.json > $R/profiler.txt 2>&1
  for i in 1 2 3 4 5; do
    [ "$(left)" -gt 25 ] || break
    timeout $(( $(left) - 15 )) python3 -m attnperf run --device cuda --kernel sdpa_cudnn --batch 4 --heads 16 \
      --seq 2048 --dim 128 --dtype bf16 --no-latency -o $R/rep$i.json > $R/rep$i.txt 2>&1
  done
fi
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv >> $R/gpu.txt 2>&1
tar czf "$OUT/r.tgz" -C $R . 2>/dev/null
cat $R/gpu.txt; cat /tmp/vc1/summary.txt 2>/dev/null
grep -vE "^\| +[+-]? +\| [0-9.e-]+ " $R/v1/verdicts.txt 2>/dev/null | grep -iE "BENCHMARKS|regression|error|exit|ratio|flag" | cut -c1-200 | tail -n 30
tail -n 25 $R/profiler.txt 2>/dev/null | cut -c1-160
grep -hE "sdpa_cudnn" $R/rep*.txt 2>/dev/null | cut -c1-200
