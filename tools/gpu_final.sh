#!/usr/bin/env bash
# Final device call: core checks (ceilings, acceptance sweep, profiler cross-check,
# default GPU sweep) and the committed asv history of main's last 5 commits.
# Needs .whl (asv + deps) and .whl/repo.bundle.  Output: $OUT/logs.tgz, $OUT/results-h100.tgz.
set -u
FINAL=${OUT:-/tmp/out}; export OUT=$FINAL/work; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
bash tools/gpu_core_check.sh > "$OUT/core.txt" 2>&1; echo "core rc=$?"
PYTHONPATH=$PWD/src python3 -m attnperf run --device cuda -o "$OUT/default.json" > "$OUT/default.txt" 2>&1
echo "default sweep rc=$?"
grep -E "^(sdpa|naive|tiled)" "$OUT/default.txt" | awk '{print $1, $2, $4, $6, $7, $8, $9, $10, $11}' | column -t | head -50
grep -A5 "^ceilings" "$OUT/core.txt"
grep -A16 "attnperf ms" "$OUT/core.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
rm -rf /tmp/repo ~/.asv-machine.json; git clone -q .whl/repo.bundle /tmp/repo && cd /tmp/repo && git checkout -q main || exit 1
PYTHONPATH=/tmp/site:$PWD/src python3 -m attnperf asv machine h100 --results-dir results > /dev/null
t0=$(date +%s); ATTNPERF_ASV_VIEWS=1 python3 -m asv run --machine h100 HEAD~5..HEAD > "$OUT/history.txt" 2>&1
echo "history rc=$? wall=$(( $(date +%s)-t0 ))s"; ls results/h100
tar czf "$FINAL/results-h100.tgz" results
tar czf "$FINAL/logs.tgz" -C "$OUT" . && rm -rf "$OUT"
