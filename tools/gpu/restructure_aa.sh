#!/usr/bin/env bash
# Issue 9: `asv continuous` A/A on a CPU between a commit before the restructure (b9dc674) and
# one after it (the bundle's main), with the README's plain asv command (factor 1.5, interleaved
# rounds, gated benchmarks).  Needs .device_repo/attnperf.bundle (git bundle of main) and asv
# importable; runs the CPU suite (ATTNPERF_ASV_DEVICE=cpu) pinned to CPUS (default 8-15).
set -u
OUT=${OUT:-/tmp/out}; W=/tmp/restructure-aa; rm -rf "$W"; mkdir -p "$W/home"
git clone -q .device_repo/attnperf.bundle "$W/repo" -b main && cd "$W/repo" || exit 1
export HOME=$W/home ATTNPERF_ASV_DEVICE=cpu CUDA_VISIBLE_DEVICES=""
BASE=${BASE:-b9dc674}; HEAD_=$(git rev-parse --short HEAD)
t0=$(date +%s)
taskset -c "${CPUS:-8-15}" python3 -m asv machine --yes --machine cpu-host > "$W/machine.log" 2>&1
taskset -c "${CPUS:-8-15}" python3 -m asv continuous --machine cpu-host --factor 1.5 --interleave-rounds \
  -a rounds=2 -b '^(?!.*Views)' "$BASE" "$HEAD_" > "$OUT/restructure_aa.txt" 2>&1
echo "restructure A/A $BASE -> $HEAD_ rc=$? wall=$(( $(date +%s)-t0 ))s"
grep -E "BENCHMARKS|^\| *[+-] |PERFORMANCE" "$OUT/restructure_aa.txt" | head -20
