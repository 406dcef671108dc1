#!/usr/bin/env bash
# Device call (nvidia-h100-x1): results/h100 history of main's last N commits (default 3), every
# benchmark of the default GPU suite (forward, training passes, accuracy, peak memory), as
# `asv run` of real commits -- the device gets the working tree, not .git, so carry a bundle:
#   here:   git bundle create .whl/repo.bundle main        (.whl is git-ignored; carry [".whl"])
#   device: N=3 bash tools/gpu/history.sh                   -> $OUT/results-h100.tgz, $OUT/history.txt
#   here:   tar xzf <files_at>/results-h100.tgz -C /tmp && cp /tmp/results/h100/*-virtualenv-*.json results/h100/
# One whole-suite commit takes ~150-200 s on the H100 (setup_cache ~50 s), so N=3 fits one call.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
N=${N:-3}
source tools/gpu/device_env.sh "$OUT/gpu.txt"
rm -rf /tmp/repo ~/.asv-machine.json
git clone -q .whl/repo.bundle /tmp/repo && cd /tmp/repo && git checkout -q main || exit 1
export PYTHONPATH=/tmp/site  # each commit's own attnperf is what asv installs and runs
PYTHONPATH=/tmp/site:$PWD/src python3 -m attnperf asv machine h100 --results-dir results > /dev/null
t0=$(date +%s)
timeout $(( ${T:-560} - 30 )) python3 -m asv run --machine h100 --skip-existing-commits "HEAD~$N..HEAD" > "$OUT/history.txt" 2>&1
echo "history rc=$? wall=$(( $(date +%s) - t0 ))s"; ls results/h100
tail -n 20 "$OUT/history.txt"
tar czf "$OUT/results-h100.tgz" results
cat "$OUT/gpu.txt"
