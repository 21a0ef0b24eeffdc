#!/usr/bin/env bash
# Parallel efficiency and layer-cache speed-up of real sweeps on a synthetic 8-layer checkpoint
# (cdmoe-synth: hidden 256, 7 MoE layers of 32 experts, Llama-2 tokenizer), one JSON line each:
#   - a fixed expert-selection round (k = 1: 7 × 32 candidates) plus one layer step, with 1 worker
#     (mpirun -np 2) and 2 workers (mpirun -np 3), one thread per worker: efficiency = T1 / (2 T2);
#   - the whole search (k = 2, layers:1-2) with and without the layer cache: the time of each
#     stage (first dispatch to last result), whether both chose the same candidates (every stage's
#     plans) and the largest relative difference of a stored metric (the expert outputs' weighted
#     sum and the condensed MLP sum in a different order: float rounding, not a different result).
#     BASELINE_BUILD (an earlier commit built in a worktree) adds its whole search, cache on.
# Usage: [ROUND_ONLY=1] [SKIP_ROUND=1] [SKIP_UNCACHED=1] [BASELINE_BUILD=DIR] bench/sweep_scaling.sh [BUILD_DIR]
#        (run from the repository root)
set -euo pipefail
build=${1:-build}
bin=$build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/cdmoe-synth" --out "$work/model" --tokenizer third_party/tokenizers/llama2/tokenizer.json \
  --hidden 256 --heads 8 --layers 8 --experts 32 --expert-inner 128 --top-k 4 --seed 1 2>/dev/null
common=(--model "$work/model" --calib examples/calibration.jsonl --calib-samples 32 --seq-len 96 --threads 1 --no-full-eval)

seconds_of() {  # the sweep's own time from its summary line
  sed -n 's/.* tasks in \([0-9.e+-]*\) s.*/\1/p' "$1"
}
cpu_of() {
  sed -n 's/.*rank 0 used \([0-9.e+-]*\) CPU-s.*/\1/p' "$1"
}

if [ "${SKIP_ROUND:-0}" != 1 ]; then
for ranks in 2 3; do
  mpirun --oversubscribe -np $ranks "$bin/cdmoe-sweep" "${common[@]}" --db "$work/r$ranks.db" --sweep round \
    --experts-kept 1 --budgets layers:1 >/dev/null 2>"$work/r$ranks.err"
done
t1=$(seconds_of "$work/r2.err"); t2=$(seconds_of "$work/r3.err"); cpu2=$(cpu_of "$work/r3.err")
# The expert round alone: first dispatch to last result of its candidates.
round='select (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 from candidates where stage = "expert_select"'
e1=$(sqlite3 "$work/r2.db" "$round"); e2=$(sqlite3 "$work/r3.db" "$round")
echo "{\"bench\":\"expert_round\",\"candidates\":$(sqlite3 "$work/r2.db" 'select count(*) from candidates'),\"one_worker_s\":$t1,\"two_workers_s\":$t2,\"efficiency\":$(echo "$t1 / (2 * $t2)" | bc -l),\"round_one_worker_s\":$e1,\"round_two_workers_s\":$e2,\"round_efficiency\":$(echo "$e1 / (2 * $e2)" | bc -l),\"coordinator_cpu_share\":$(echo "$cpu2 / $t2" | bc -l)}"
fi

[ "${ROUND_ONLY:-0}" = 1 ] && exit 0  # ROUND_ONLY=1: the efficiency part only (~2 min)
# The whole search: "on" (this build, layer cache), "off" (this build, --no-layer-cache; skipped
# with SKIP_UNCACHED=1) and "base" (BASELINE_BUILD's binaries with the cache: an earlier commit).
runs=(on)
[ "${SKIP_UNCACHED:-0}" = 1 ] || runs+=(off)
[ -n "${BASELINE_BUILD:-}" ] && runs+=(base)
for run in "${runs[@]}"; do
  flag=(); sweep=$bin/cdmoe-sweep
  [ $run = off ] && flag=(--no-layer-cache)
  [ $run = base ] && sweep=$BASELINE_BUILD/bin/cdmoe-sweep
  mpirun -np 2 "$sweep" "${common[@]}" "${flag[@]}" --db "$work/c_$run.db" --sweep whole \
    --experts-kept 2 --budgets layers:1-2 >/dev/null 2>"$work/c_$run.err"
  sqlite3 "$work/c_$run.db" "select stage, plan_hash from candidates order by 1, 2" >"$work/c_$run.plans"
  stage_times=$(sqlite3 "$work/c_$run.db" "select group_concat('\"' || stage || '_s\":' || printf('%.3f', s), ',') from (select case when stage like 'layer_select%' then 'layer_select' else stage end as stage, (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 as s from candidates group by 1)")
  echo "{\"bench\":\"whole_search\",\"run\":\"$run\",\"candidates\":$(sqlite3 "$work/c_$run.db" 'select count(*) from candidates'),\"total_s\":$(seconds_of "$work/c_$run.err"),$stage_times}"
done
for other in "${runs[@]:1}"; do  # the same candidates (so the same choices), and how far any metric moved
  same_plans=$(cmp -s "$work/c_on.plans" "$work/c_$other.plans" && echo true || echo false)
  largest=$(sqlite3 "$work/c_on.db" "attach '$work/c_$other.db' as other; select coalesce(max(abs(a.value - b.value) / max(abs(b.value), 1e-300)), 0) from metrics a join candidates ca on ca.id = a.candidate_id join other.candidates cb on cb.stage = ca.stage and cb.plan_hash = ca.plan_hash join other.metrics b on b.candidate_id = cb.id and b.name = a.name")
  echo "{\"bench\":\"whole_search_agreement\",\"runs\":\"on vs $other\",\"same_candidates\":$same_plans,\"largest_relative_difference\":$largest}"
done
