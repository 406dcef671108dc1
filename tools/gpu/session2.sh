#!/usr/bin/env bash
# Second device call: GPU tests on the merged tree, fault isolation, files/first-run, plugin flow.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
echo "== pytest -m gpu"
timeout 130 python3 -m pytest -q -m gpu -p no:cacheprovider --ignore=tests/test_architecture.py tests > "$OUT/gpu_tests.txt" 2>&1
echo "exit $?"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/gpu_tests.txt" | tail -n 12
echo "== files_check (ceilings 3 rounds, default run, warnings)"
OUT=/tmp/files timeout 170 bash tools/gpu/files_check.sh > "$OUT/files_check.txt" 2>&1
echo "exit $?"; cut -c1-180 "$OUT/files_check.txt" | tail -n 70
echo "== isolation_check"
OUT=/tmp/iso timeout 90 python3 tools/gpu/isolation_check.py > "$OUT/isolation_check.txt" 2>&1
echo "exit $?"; tail -n 30 "$OUT/isolation_check.txt"
echo "== plugin_check"
OUT=/tmp/plug timeout 190 bash tools/gpu/plugin_check.sh > "$OUT/plugin_check.txt" 2>&1
echo "exit $?"; tail -n 40 "$OUT/plugin_check.txt"
