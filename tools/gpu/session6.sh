#!/usr/bin/env bash
# Next device call (one H100 is enough): the GPU proofs still owed by issues 8 and 11.
#   passes_check  (issue 11 items 2-3: fwd/bwd/fwd+bwd timing + gradient gate, graph vs eager)
#   accmem_check  (issue 11 items 4-5: error figures and peak memory, A/A spread)
#   profiler_check (issue 8: device time vs torch.profiler within 2 % for kernels >= 50 us)
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ls .whl/*.whl | grep -vE '/(pip|wheel|setuptools|build|pyproject_hooks)-' | xargs python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site || exit 3
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit,temperature.gpu,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
{ echo "== passes_check"; timeout 240 python3 tools/gpu/passes_check.py --out "$OUT"; echo "rc=$?"; } > "$OUT/passes.txt" 2>&1
{ echo "== accmem_check"; timeout 150 python3 tools/gpu/accmem_check.py; echo "rc=$?"; } > "$OUT/accmem.txt" 2>&1
{ echo "== profiler_check"; timeout 150 python3 tools/profiler_check.py "$OUT/profiler.json"; echo "rc=$?"; } > "$OUT/profiler.txt" 2>&1
tail -n 40 "$OUT/passes.txt" "$OUT/accmem.txt" "$OUT/profiler.txt"
