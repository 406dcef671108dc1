#!/usr/bin/env bash
# Device call (nvidia-h100-x1): tools/gpu/state_probe.py -- does a reference matmul move with
# the ~2.5 % per-process slow state seen at the train shape?
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source tools/gpu/device_env.sh "$OUT/gpu.txt"
if [ "${PROBE:-state}" = capture ]; then timeout 280 python3 tools/gpu/capture_probe.py "$OUT/capture_probe.json" 2>&1 | tail -n 30; else
  timeout 280 python3 tools/gpu/state_probe.py "$OUT/state_probe.json" 2>&1 | tee "$OUT/state_probe.txt" | tail -n 40; fi
cat "$OUT/gpu.txt"
