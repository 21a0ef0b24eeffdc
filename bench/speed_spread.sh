#!/usr/bin/env bash
# How much a sweep's speed-up moves between repeated sweeps: the same 4 plans of the demo model
# (cdmoe-sweep --strategy plans, speed and memory only), REPEATS sweeps, one JSON line per plan
# with every sweep's speed-up, their spread (max - min) and, where the build measures one, the
# 95% intervals and pairs. Run it with an older build (a worktree of an earlier commit) to
# compare with its figure (then A B pairs, median of --speed-repeats 3).
# Usage: bench/speed_spread.sh [BUILD_DIR] [REPEATS]   (from the repository root; ~1-6 min a sweep)
set -euo pipefail
build=${1:-build}
repeats=${2:-5}
bin=$build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cat >"$work/plans.jsonl" <<'PLANS'
{"name":"s1","plan":{"layers":{"1":{"op":"condense","experts":[]}}}}
{"name":"s4","plan":{"layers":{"1":{"op":"condense","experts":[]},"2":{"op":"condense","experts":[]},"3":{"op":"condense","experts":[]},"4":{"op":"condense","experts":[]}}}}
{"name":"drop4","plan":{"layers":{"1":{"op":"drop"},"2":{"op":"drop"},"3":{"op":"drop"},"4":{"op":"drop"}}}}
{"name":"s7","plan":{"layers":{"1":{"op":"condense","experts":[]},"2":{"op":"condense","experts":[]},"3":{"op":"condense","experts":[]},"4":{"op":"condense","experts":[]},"5":{"op":"condense","experts":[]},"6":{"op":"condense","experts":[]},"7":{"op":"condense","experts":[]}}}}
PLANS
interval=0
"$bin/cdmoe-sweep" --help 2>/dev/null | grep -q -- --speed-ci && interval=1
for r in $(seq 1 "$repeats"); do
  mpirun -np 2 "$bin/cdmoe-sweep" --model data/demo/model --calib data/demo/text/calibration.txt --calib-samples 32 \
    --seq-len 128 --threads 2 --strategy plans --plans "$work/plans.jsonl" --budgets layers:1 --db "$work/s.db" --sweep "r$r" >/dev/null 2>&1
done
columns="speedup"
[ $interval = 1 ] && columns="speedup, speedup_ci_low, speedup_ci_high, speed_pairs"
sqlite3 -json "$work/s.db" "select budget, sweep, $columns from results where stage = 'full_eval' and method <> 'original' order by budget, sweep" |
python3 -c '
import json, sys
rows = json.load(sys.stdin)
plans = {}
for row in rows:
    plans.setdefault(row["budget"], []).append(row)
for plan, runs in plans.items():
    speedups = [r["speedup"] for r in runs]
    line = {"bench": "speed_spread", "plan": plan, "sweeps": len(runs), "speedups": [round(s, 4) for s in speedups],
            "spread": round(max(speedups) - min(speedups), 4)}
    if "speedup_ci_low" in runs[0]:
        line["intervals"] = [[round(r["speedup_ci_low"], 4), round(r["speedup_ci_high"], 4)] for r in runs]
        line["pairs"] = [int(r["speed_pairs"]) for r in runs]
    print(json.dumps(line))
'
