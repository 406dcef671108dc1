#!/usr/bin/env bash
# GPU host (CUDA PyTorch, no network): real `asv continuous` on a clone.
#   1. base vs a commit adding ~12% work to the tiled kernel (one extra KV block) -> flagged
#   2. base vs a commit with identical kernel code (A/A) -> nothing flagged
#   3. the last 5 commits of main recorded with views, for the committed results/
# HISTORY_ONLY=1 skips 1 and 2.
# Needs .whl (asv, asv_runner, virtualenv, setuptools + deps) and .whl/repo.bundle.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
rm -rf /tmp/repo ~/.asv-machine.json; git clone -q .whl/repo.bundle /tmp/repo && cd /tmp/repo && git checkout -q main || exit 1
git config user.name gpu-check; git config user.email gpu@attnperf.invalid
BASE=$(git rev-parse HEAD)
git checkout -q -b aa-check; echo "<!-- A/A -->" >> README.md; git commit -qam "A/A: identical kernel code"; AA=$(git rev-parse HEAD)
git checkout -q "$BASE"
python3 - <<'PY'
p = "src/attnperf/kernels/tiled.py"; s = open(p).read()
anchor = "    return (acc / l).to(q.dtype).reshape(b, h, sq, d)"
extra = ("    # INJECTED SLOWDOWN (gpu check): one more KV block of work, result discarded.\n"
         "    s_x = torch.matmul(qg, kb.transpose(-2, -1)).float() * scale\n"
         "    acc = acc + 0.0 * torch.matmul(torch.exp(s_x - m).to(v.dtype), vb).float()\n")
assert anchor in s; open(p, "w").write(s.replace(anchor, extra + anchor))
PY
git commit -qam "slow down tiled by one extra KV block"; SLOW=$(git rev-parse HEAD)
git checkout -q main
PYTHONPATH=/tmp/site:$PWD/src python3 -m attnperf asv machine h100 --results-dir results | tee "$OUT/machine.json"
if [ -z "${HISTORY_ONLY:-}" ]; then
ASVC="python3 -m asv continuous --machine h100 --factor 1.05 -b ^(?!.*Views)"
t0=$(date +%s); $ASVC "$BASE" "$SLOW" > "$OUT/slow.txt" 2>&1; echo "slow rc=$? wall=$(( $(date +%s)-t0 ))s"
grep -E "^\|? *[+-] |Ratio|SIGNIFICANTLY|PERFORMANCE" "$OUT/slow.txt" | head -30
t0=$(date +%s); $ASVC "$BASE" "$AA" > "$OUT/aa.txt" 2>&1; echo "aa rc=$? wall=$(( $(date +%s)-t0 ))s"
grep -E "^\|? *[+-] |SIGNIFICANTLY|PERFORMANCE" "$OUT/aa.txt" | head -30
python3 - "$OUT" <<'PY'
import json, glob, sys
for f in sorted(glob.glob("results/h100/*.json")):
    d = json.load(open(f))
    if "durations" not in d: continue
    print(f.split("/")[-1], {k: round(v, 1) for k, v in d["durations"].items()})
    for name, row in d["results"].items():
        print(f"  {name}: duration {row[4] if len(row) > 4 else None}")
PY
rm -f results/h100/"${AA:0:8}"-*.json results/h100/"${SLOW:0:8}"-*.json
fi  # HISTORY_ONLY
t0=$(date +%s); ATTNPERF_ASV_VIEWS=1 python3 -m asv run --machine h100 -a rounds=1 HEAD~5..HEAD > "$OUT/history.txt" 2>&1
echo "history rc=$? wall=$(( $(date +%s)-t0 ))s"; ls results/h100
tar czf "$OUT/results-h100.tgz" results
