#!/usr/bin/env bash
# Issue 8 acceptance on a GPU host: the PR verdict (`attnperf ci bench`, i.e. `asv continuous`
# with interleaved rounds and the project's default verdict settings) over the whole default
# GPU suite, for identical code (A/A) and for injected extra device work (A/B), plus
# `attnperf calibrate` and `attnperf bisect`.  Runs from attnperf's repository root, no network.
#
#   tools/gpu/verdict_check.sh GPU:JOB[,JOB...] [GPU:JOB...]
#
# One pipeline per GPU argument, all in parallel (each pinned with CUDA_VISIBLE_DEVICES, own
# clone, own HOME); the jobs of a pipeline run one after another:
#   aa        ci bench C0 -> C1 (C1 changes only a comment)                  expect exit 0
#   ab5 ab2   ci bench C0 -> C0 + 5 % / 2 % extra device work on every SDPA call   expect exit 1
#   cal       attnperf calibrate --runs 3 on C0; the thresholds file goes to $WORK/thresholds.json
#             (later aa/ab jobs of every pipeline use it once it exists)
#   bis5      attnperf bisect over 6 commits with the 5 % step at the 4th (sdpa_cudnn, train)
#   bisflat   attnperf bisect over 6 commits without a step (sdpa_cudnn, train)
#   abtri     ci bench C0 -> C0 with every Triton config forced to 64x16 tiles (triton_flash only)  expect exit 1
#   triton    tools/gpu/triton_check.py and `attnperf run` of triton_flash beside cuDNN at train
# (bisect rounds: BISECT_ROUNDS, default 2; VC_DEADLINE=epoch seconds skips a job that the
# last job's wall says would not end before it)
# Extra work: after each SDPA call, torch.cuda._sleep(cycles) with cycles calibrated in the
# process (first eager call of each shape/backend: 20 back-to-back calls timed with events, and
# the sleep kernel timed the same way), so the added device time is FRAC of that call's time
# (plus one graph node's launch gap, ~1 us: relatively more at small problems).
# Prerequisites: carried wheels installed into /tmp/site (see session scripts), torch with CUDA.
set -u
export PYTHONUNBUFFERED=1
SRC_REPO=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WORK=${WORK:-/tmp/vc}; rm -rf "$WORK"; mkdir -p "$WORK/bin"
PY=$(command -v python3)
cat > "$WORK/bin/attnperf" <<EOF
#!/bin/sh
exec "$PY" -m attnperf "\$@"
EOF
chmod +x "$WORK/bin/attnperf"
export PATH="$WORK/bin:$PATH" ATTNPERF_ASV_DEVICE=cuda

inject() {  # $1 = fraction of the SDPA call's device time added after every call
cat >> src/attnperf/kernels/sdpa.py <<EOF


# --- verdict_check: $1 of each SDPA call's device time added as a sleep kernel ---
_VC_FRAC = $1
_VC_CYCLES = {}
_vc_original_call = _call


def _vc_flags():
    b = torch.backends.cuda
    return (b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(), b.math_sdp_enabled(),
            getattr(b, "cudnn_sdp_enabled", lambda: None)())


def _vc_time_ms(fn, reps=20):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def _call(q, k, v, causal, scale):  # noqa: F811
    out = _vc_original_call(q, k, v, causal, scale)
    if not q.is_cuda:
        return out
    key = (tuple(q.shape), tuple(k.shape), q.dtype, causal, _vc_flags())
    if key not in _VC_CYCLES and not torch.cuda.is_current_stream_capturing():
        for _ in range(3):
            _vc_original_call(q, k, v, causal, scale)
        call_ms = _vc_time_ms(lambda: _vc_original_call(q, k, v, causal, scale))
        probe = 200_000
        sleep_ms = _vc_time_ms(lambda: torch.cuda._sleep(probe))
        _VC_CYCLES[key] = max(1, int(_VC_FRAC * call_ms / sleep_ms * probe))
    cycles = _VC_CYCLES.get(key)
    if cycles:
        torch.cuda._sleep(cycles)
    return out
EOF
}

# The master repository: C0 = this working tree; branches for each variant.
M=$WORK/master
mkdir -p "$M" && tar -C "$SRC_REPO" --exclude=./.git --exclude=./.whl --exclude=./.asv --exclude=./.venv \
  --exclude=./.device_triton --exclude='__pycache__' -cf - . | tar -C "$M" -xf -
cd "$M" || exit 1
git init -q && git symbolic-ref HEAD refs/heads/main
git config user.name verdict-check && git config user.email vc@attnperf.invalid
git add -A && git commit -qm "C0: attnperf as checked out" || exit 1
C0=$(git rev-parse HEAD)
echo "# A/A: identical code" >> docs/architecture.md && git commit -qam "C1: comment only" && C1=$(git rev-parse HEAD)
git checkout -q -b ab5 "$C0" && inject 0.05 && git commit -qam "AB5: +5 % device work per SDPA call" && AB5=$(git rev-parse HEAD)
git checkout -q -b ab2 "$C0" && inject 0.02 && git commit -qam "AB2: +2 % device work per SDPA call" && AB2=$(git rev-parse HEAD)
git checkout -q -b abtri "$C0"
python3 - <<'PYEOF'
import re
p = "src/attnperf/kernels/triton_flash.py"
s = open(p).read()
# de-tune: every Triton kernel may only use small tiles (16-row blocks, 4 warps, 2 stages)
s, n = re.subn(r"(_(?:FWD|DKDV|DQ)_CONFIGS = _cfgs\(\[)[^\]]*\]", r"\1(64, 16, 4, 2)]", s)
assert n == 3, n
open(p, "w").write(s)
PYEOF
git commit -qam "ABTRI: Triton kernels de-tuned to 64x16 tiles" && ABTRI=$(git rev-parse HEAD)
git checkout -q -b bis5 "$C0"
for i in 1 2 3 4 5; do
  if [ $i = 3 ]; then inject 0.05; git commit -qam "B$i: +5 % device work per SDPA call"; B5_STEP=$(git rev-parse HEAD)
  else echo "# docs $i" >> docs/architecture.md; git commit -qam "B$i: docs"; fi
done
B5_END=$(git rev-parse HEAD)
git checkout -q -b bisflat "$C0"
for i in 1 2 3 4 5; do echo "# flat $i" >> docs/architecture.md; git commit -qam "F$i: docs"; done
FLAT_END=$(git rev-parse HEAD)
git checkout -q main
echo "ABTRI=$ABTRI C0=$C0 C1=$C1 AB5=$AB5 AB2=$AB2 B5_STEP=$B5_STEP B5_END=$B5_END FLAT_END=$FLAT_END" | tee "$OUT/commits.txt"

LAST_WALL=0
job() {  # $1 = pipeline dir, $2 = job name
  local d=$1 name=$2 t0 rc
  t0=$(date +%s)
  # VC_DEADLINE (epoch s): skip a job that would not finish in time (estimate: the last job's wall)
  if [ -n "${VC_DEADLINE:-}" ] && [ $(( t0 + LAST_WALL + ${VC_MARGIN:-15} )) -gt "$VC_DEADLINE" ]; then
    echo "[$(basename "$d")] $name skipped: the deadline leaves $(( VC_DEADLINE - t0 ))s, the last job took ${LAST_WALL}s" | tee -a "$WORK/summary.txt"
    return
  fi
  # the calibrated thresholds, once a pipeline has them: where ci bench and bisect look
  [ -f "$WORK/thresholds.json" ] && cp "$WORK/thresholds.json" results/h100/attnperf-thresholds.json
  case $name in
    abtri)  # the Triton kernel only (restricted grid), de-tuned head
      ATTNPERF_ASV_KERNELS=triton_flash attnperf ci bench --base "$C0" --head "$ABTRI" --machine h100 \
        --device cuda --rounds 2 --no-describe --out "$d/out-$name" > "$d/$name.log" 2>&1; rc=$?;;
    aa|ab5|ab2)
      local head=$C1; [ $name = ab5 ] && head=$AB5; [ $name = ab2 ] && head=$AB2
      attnperf ci bench --base "$C0" --head "$head" --machine h100 --device cuda --rounds 2 \
        --no-describe --out "$d/out-$name" > "$d/$name.log" 2>&1; rc=$?;;
    cal)
      attnperf calibrate --machine h100 --commit "$C0" --runs 3 --rounds 2 \
        -o "$d/thresholds.json" > "$d/$name.log" 2>&1; rc=$?
      [ $rc = 0 ] && cp "$d/thresholds.json" "$WORK/thresholds.json";;
    bis5|bisflat)
      local end=$B5_END; [ $name = bisflat ] && end=$FLAT_END
      ATTNPERF_ASV_KERNELS=sdpa_cudnn ATTNPERF_ASV_PROBLEMS=train \
        attnperf bisect "$C0" "$end" --machine h100 -b track_device_time --rounds "${BISECT_ROUNDS:-2}" \
        > "$d/$name.log" 2>&1; rc=$?;;
    triton)  # the Triton kernel's GPU correctness check and its speed beside cuDNN at train
      (cd "$SRC_REPO" && timeout 240 python3 tools/gpu/triton_check.py && timeout 120 python3 -m attnperf run \
        --device cuda --kernel triton_flash,sdpa_cudnn --batch 4 --heads 16 --seq 2048 --dim 128 \
        --dtype bf16 --no-latency) > "$d/$name.log" 2>&1; rc=$?;;
  esac
  LAST_WALL=$(( $(date +%s)-t0 ))
  echo "[$(basename "$d")] $name rc=$rc wall=${LAST_WALL}s" | tee -a "$WORK/summary.txt"
}

pipeline() {  # $1 = GPU index, $2 = comma list of jobs
  local d=$WORK/gpu$1
  git clone -q "$M" "$d/repo" && cd "$d/repo" || return
  git checkout -q main
  export CUDA_VISIBLE_DEVICES=$1 HOME=$d/home
  mkdir -p "$HOME"
  attnperf asv machine h100 > "$d/machine.log" 2>&1 || { echo "[gpu$1] asv machine failed"; tail "$d/machine.log"; }
  for j in ${2//,/ }; do job "$d" "$j"; done
}

for spec in "$@"; do pipeline "${spec%%:*}" "${spec#*:}" & done
wait
cd "$WORK" && cat summary.txt
for f in gpu*/*.log; do
  echo "=== $f"; grep -E "^\|? *[+-] |^\||BENCHMARKS|regression|REGRESSION|error|Error|threshold|exit" "$f" | tail -n 60
done > "$OUT/verdicts.txt" 2>&1
tar czf "$OUT/verdict_logs.tgz" --exclude='*.html' summary.txt gpu*/*.log gpu*/out-*/ gpu*/thresholds.json 2>/dev/null
