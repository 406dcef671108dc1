#!/usr/bin/env bash
# One device call: carried wheels, GPU tests, the power-state check, the default GPU run.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv
  python3 -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__)"; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
echo "== pytest -m gpu"
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider --ignore=tests/test_architecture.py tests > "$OUT/gpu_tests.txt" 2>&1
echo "exit $?"; tail -n 15 "$OUT/gpu_tests.txt"
echo "== power_state_check"
OUT=/tmp/power timeout 260 python3 tools/gpu/power_state_check.py > "$OUT/power_stdout.txt" 2>&1
echo "exit $?"; tail -n 45 "$OUT/power_stdout.txt"; cp /tmp/power/power_state_check.json "$OUT/" 2>/dev/null
echo "== attnperf run --device cuda (default sweep)"
timeout 120 python3 -m attnperf run --device cuda -o "$OUT/default.json" > "$OUT/default.txt" 2>&1
echo "exit $?"; cat "$OUT/default.txt" | cut -c1-200 | tail -n 60
