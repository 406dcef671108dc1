#!/usr/bin/env bash
# GPU proof for the `files` branch (issue 12 items 11 and 15), one device call:
#  - ceilings best of 3 rounds, and how long measuring them takes;
#  - `attnperf run --device cuda` (default sweep): how many warnings reach the terminal
#    (before: 12 PyTorch UserWarnings) and how many the report records instead;
#  - any row above 100 % efficiency, and whether it is flagged (ceiling beaten / in cache).
# Results under $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/attnperf-out}; mkdir -p "$OUT"
export XDG_CACHE_HOME="$OUT/xdg"   # a fresh cache: the ceilings are measured here
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv
start=$SECONDS
python3 -m attnperf ceilings --device cuda --json > "$OUT/ceilings.json"
echo "ceilings measured in $((SECONDS - start)) s (3 rounds)"
python3 -m attnperf run --device cuda -o "$OUT/run.json" > "$OUT/run.out" 2> "$OUT/run.err"
echo "exit $?"; cat "$OUT/run.out"; head -3 "$OUT/run.err"
echo "warning lines on the terminal: $(grep -ci 'warning' "$OUT/run.err")"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
c = json.load(open(f"{out}/ceilings.json"))
print("ceilings: rounds", c.get("rounds"), "copy GB/s %.0f" % c["bandwidth_gb_s"],
      {k: round(v, 1) for k, v in c["matmul_tflops"].items()})
r = json.load(open(f"{out}/run.json"))
warned = [(x["id"], w) for x in r["results"] for w in x.get("warnings", [])]
print(f"warnings recorded in the report: {len(warned)}")
for i, w in warned[:20]:
    print("  ", i, w[:160])
for x in r["results"]:
    rf = x.get("roofline") or {}
    if rf.get("efficiency_pct", 0) > 100:
        print(f"  >100%: {x['id']} eff {rf['efficiency_pct']:.0f}% beaten={rf.get('ceiling_beaten')} "
              f"in_cache={rf.get('cache_resident')} {rf.get('ceiling_note', '')[:120]}")
PY
