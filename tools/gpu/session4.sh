#!/usr/bin/env bash
# The plugin flow again, offline asv environments seeded from the carried pip/wheel/setuptools wheels.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/plug"
# pip/wheel/setuptools are only for asv's environments (PIP_FIND_LINKS), not for this Python.
mkdir -p /tmp/whl-site && ls .whl/*.whl | grep -vE '/(pip|wheel|setuptools|build|pyproject_hooks)-' | xargs python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
OUT=$OUT/plug timeout 300 bash tools/gpu/plugin_check.sh > "$OUT/plugin_check.txt" 2>&1
echo "exit $?"; grep -v "^    wrote" "$OUT/plugin_check.txt" | tail -n 30
for f in "$OUT"/plug/plugin-aa.txt "$OUT"/plug/plugin-slow.txt; do echo "--- $f"; grep -E "^ *[+-] |^\||BENCHMARKS|ratio|gpu_attn|Error|error" "$f" | tail -n 25; done
rm -rf "$OUT/plug/plugin-site"
