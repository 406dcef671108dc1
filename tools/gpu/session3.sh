#!/usr/bin/env bash
# Third device call: the plugin flow with its asv logs kept, and the isolation check.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/plug"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
echo "== plugin_check"
OUT=$OUT/plug timeout 220 bash tools/gpu/plugin_check.sh > "$OUT/plugin_check.txt" 2>&1
echo "exit $?"; grep -v "^    wrote" "$OUT/plugin_check.txt" | tail -n 25
for f in "$OUT"/plug/plugin-aa.txt "$OUT"/plug/plugin-slow.txt; do echo "--- $f"; tail -n 30 "$f"; done
rm -rf "$OUT/plug/plugin-site"
echo "== isolation_check"
OUT=/tmp/iso timeout 150 python3 tools/gpu/isolation_check.py > "$OUT/isolation_check.txt" 2>&1
echo "exit $?"; tail -n 28 "$OUT/isolation_check.txt"
