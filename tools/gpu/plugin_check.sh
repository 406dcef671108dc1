#!/usr/bin/env bash
# GPU host: README "Track your own kernels" in an external repository, on CUDA.
#   A throwaway repository with a package whose CUDA-graph-safe PyTorch kernel (gpu_attn)
#   is registered through the attnperf.kernels entry point; `attnperf init`; commit;
#   1. asv continuous HEAD~1 HEAD (A/A: identical kernel code)      -> expect rc 0, nothing flagged
#   2. a commit computing the kernel twice (~2x), asv continuous    -> expect rc 1, only gpu_attn
#   3. attnperf site build                                          -> gpu_attn's history + roofline
# Run from attnperf's repository root, no network.  Prerequisites (as for gpu_asv_check.sh):
# python3 has CUDA PyTorch; asv, asv_runner, virtualenv, setuptools are importable by python3
# (e.g. PYTHONPATH=/tmp/site) and their wheels are in PIP_FIND_LINKS with PIP_NO_INDEX=1
# (asv installs the pinned asv_runner into its environment).  attnperf runs from src/.
# Prints the verdicts and the site's numbers; copies logs and pages to $OUT.  Takes ~2-4 min.
set -u
export PYTHONUNBUFFERED=1
SRC=$PWD/src
PY=$(command -v python3)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/attnperf-plugin.XXXXXX)
REPO=$WORK/gpuattn-repo
export HOME=$WORK/home ATTNPERF_ASV_DEVICE=cuda
mkdir -p "$HOME" "$WORK/bin" "$REPO/gpuattn"
# asv.conf.json's build/install steps call `attnperf` from PATH: here, attnperf from src/.
cat > "$WORK/bin/attnperf" <<EOF
#!/bin/sh
PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m attnperf "\$@"
EOF
chmod +x "$WORK/bin/attnperf"
export PATH="$WORK/bin:$PATH"
ASV="env PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH} $PY -m asv"

cat > "$REPO/pyproject.toml" <<'EOF'
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "gpuattn"
version = "0.1.0"

[project.entry-points."attnperf.kernels"]
gpu_attn = "gpuattn:gpu_attn"

[tool.setuptools]
packages = ["gpuattn"]
EOF
cat > "$REPO/gpuattn/__init__.py" <<'EOF'
"""A user's GPU kernel: plain PyTorch, no host sync (safe to capture in a CUDA graph)."""
import torch

import attnperf

REPEAT = 1


@attnperf.kernel(name="gpu_attn", family="user", devices=["cuda"], dtypes=["float16", "bfloat16"])
def gpu_attn(q, k, v, *, causal, scale):
    """matmul, fp32 softmax, matmul"""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    for _ in range(REPEAT):
        s = torch.matmul(q, k.transpose(-2, -1)).float() * scale
        if causal:
            keep = torch.ones(s.shape[-2:], dtype=torch.bool, device=q.device).tril()
            s = s.masked_fill(~keep, float("-inf"))
        out = torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)
    return out
EOF
cd "$REPO" || exit 1
git init -q && git symbolic-ref HEAD refs/heads/main && git config user.name gpu-check && git config user.email gpu@attnperf.invalid
git add -A && git commit -qm "gpu_attn kernel"
t0=$(date +%s)
attnperf init || { echo "attnperf init failed"; exit 1; }
sed -i 's/^problems = .*/problems = ["causal", "mid", "train"]/' pyproject.toml
sed -n '/^\[tool.attnperf\]/,$p' pyproject.toml | grep -v '^#'
git add -A && git commit -qm "Track attention kernels with attnperf"
$ASV machine --yes > "$OUT/plugin-machine.txt" 2>&1
GATE='^(?!.*Views)'
flagged() { grep -E "^\|? *\+ " "$1" | sed 's/  */ /g'; }
$ASV continuous --factor 1.05 -b "$GATE" HEAD~1 HEAD > "$OUT/plugin-aa.txt" 2>&1
echo "A/A rc=$? (expect 0) wall=$(( $(date +%s)-t0 ))s; flagged:"; flagged "$OUT/plugin-aa.txt"
sed -i 's/^REPEAT = 1/REPEAT = 2/' gpuattn/__init__.py && git commit -qam "gpu_attn: compute twice"
t1=$(date +%s)
$ASV continuous --factor 1.05 -b "$GATE" HEAD~1 HEAD > "$OUT/plugin-slow.txt" 2>&1
echo "2x rc=$? (expect 1) wall=$(( $(date +%s)-t1 ))s; flagged (expect only 'gpu_attn'):"
flagged "$OUT/plugin-slow.txt"
grep -E "device_time|x_over_floor" -A12 "$OUT/plugin-slow.txt" | grep -E "gpu_attn|sdpa" | head -12
attnperf site build --no-asv --out "$WORK/site" > "$OUT/plugin-site.txt" 2>&1
echo "site rc=$?"; cat "$OUT/plugin-site.txt"
cp -r "$WORK/site/attnperf" "$OUT/plugin-site" 2>/dev/null
"$PY" - "$WORK/site/attnperf" <<'PY'
import glob, re, sys
for page in sorted(glob.glob(sys.argv[1] + "/*.html")):
    if page.endswith("index.html"):
        continue
    text = re.sub(r"<[^>]+>", " ", open(page).read())
    rows = [" ".join(line.split()) for line in text.splitlines() if "gpu_attn" in line or "sdpa" in line]
    print(page.rsplit("/", 1)[-1], *rows[:12], sep="\n  ")
PY
echo "total wall=$(( $(date +%s)-t0 ))s"
