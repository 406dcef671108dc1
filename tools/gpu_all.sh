#!/usr/bin/env bash
# One device call: core checks (ceilings, acceptance sweep, profiler cross-check)
# then the asv checks and history.  Everything lands in $OUT/logs.tgz + results tgz.
FINAL=${OUT:-/tmp/out}; export OUT=$FINAL/work; mkdir -p "$OUT"
bash tools/gpu_core_check.sh > "$OUT/core.txt" 2>&1; echo "core rc=$?"
grep -A18 "^kernel " "$OUT/core.txt" | head -40
grep -A5 "^ceilings" "$OUT/core.txt"
bash tools/gpu_asv_check.sh
mv "$OUT/results-h100.tgz" "$FINAL/" 2>/dev/null
tar czf "$FINAL/logs.tgz" -C "$OUT" . && rm -rf "$OUT"
