#!/usr/bin/env bash
# One device call: core checks (ceilings, acceptance sweep, profiler cross-check)
# then the asv checks and history.  Results under $OUT.
bash tools/gpu_core_check.sh > "${OUT:-/tmp/out}/core.txt" 2>&1; echo "core rc=$?"
grep -A30 "^kernel " "${OUT:-/tmp/out}/core.txt" | head -60
grep -A6 "^ceilings" "${OUT:-/tmp/out}/core.txt"
bash tools/gpu_asv_check.sh
