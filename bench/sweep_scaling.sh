#!/usr/bin/env bash
# Parallel efficiency and layer-cache speed-up of real sweeps on a synthetic 8-layer checkpoint
# (cdmoe-synth: hidden 256, 7 MoE layers of 32 experts, Llama-2 tokenizer), one JSON line each:
#   - a fixed expert-selection round (k = 1: 7 × 32 candidates) plus one layer step, with 1 worker
#     (mpirun -np 2) and 2 workers (mpirun -np 3), one thread per worker: efficiency = T1 / (2 T2);
#   - the whole search (k = 2, layers:1-2) with and without the layer cache: the time of each
#     stage (first dispatch to last result), whether both chose the same candidates (every stage's
#     plans) and the largest relative difference of a stored metric (the expert outputs' weighted
#     sum and the condensed MLP sum in a different order: float rounding, not a different result).
#     BUILD_DIR may be an older build (a worktree of an earlier commit) to compare stage times.
# Usage: [ROUND_ONLY=1] bench/sweep_scaling.sh [BUILD_DIR]   (run from the repository root)
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

for ranks in 2 3; do
  mpirun --oversubscribe -np $ranks "$bin/cdmoe-sweep" "${common[@]}" --db "$work/r$ranks.db" --sweep round \
    --experts-kept 1 --budgets layers:1 >/dev/null 2>"$work/r$ranks.err"
done
t1=$(seconds_of "$work/r2.err"); t2=$(seconds_of "$work/r3.err"); cpu2=$(cpu_of "$work/r3.err")
# The expert round alone: first dispatch to last result of its candidates.
round='select (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 from candidates where stage = "expert_select"'
e1=$(sqlite3 "$work/r2.db" "$round"); e2=$(sqlite3 "$work/r3.db" "$round")
echo "{\"bench\":\"expert_round\",\"candidates\":$(sqlite3 "$work/r2.db" 'select count(*) from candidates'),\"one_worker_s\":$t1,\"two_workers_s\":$t2,\"efficiency\":$(echo "$t1 / (2 * $t2)" | bc -l),\"round_one_worker_s\":$e1,\"round_two_workers_s\":$e2,\"round_efficiency\":$(echo "$e1 / (2 * $e2)" | bc -l),\"coordinator_cpu_share\":$(echo "$cpu2 / $t2" | bc -l)}"

[ "${ROUND_ONLY:-0}" = 1 ] && exit 0  # ROUND_ONLY=1: the efficiency part only (~2 min)
for cache in on off; do
  flag=(); [ $cache = off ] && flag=(--no-layer-cache)
  mpirun -np 2 "$bin/cdmoe-sweep" "${common[@]}" "${flag[@]}" --db "$work/c_$cache.db" --sweep whole \
    --experts-kept 2 --budgets layers:1-2 >/dev/null 2>"$work/c_$cache.err"
  sqlite3 "$work/c_$cache.db" "select c.stage, c.plan_hash, m.name, printf('%.17g', m.value) from metrics m join candidates c on c.id = m.candidate_id order by 1, 2, 3" >"$work/c_$cache.txt"
  sqlite3 "$work/c_$cache.db" "select stage, plan_hash from candidates order by 1, 2" >"$work/c_$cache.plans"
done
same=$(cmp -s "$work/c_on.txt" "$work/c_off.txt" && echo true || echo false)
same_plans=$(cmp -s "$work/c_on.plans" "$work/c_off.plans" && echo true || echo false)
largest=$(sqlite3 "$work/c_on.db" "attach '$work/c_off.db' as off; select coalesce(max(abs(a.value - b.value) / max(abs(b.value), 1e-300)), 0) from metrics a join candidates ca on ca.id = a.candidate_id join off.candidates cb on cb.stage = ca.stage and cb.plan_hash = ca.plan_hash join off.metrics b on b.candidate_id = cb.id and b.name = a.name")
on=$(seconds_of "$work/c_on.err"); off=$(seconds_of "$work/c_off.err")
stage_times=$(sqlite3 "$work/c_on.db" "select group_concat('\"' || stage || '_s\":' || printf('%.3f', s), ',') from (select case when stage like 'layer_select%' then 'layer_select' else stage end as stage, (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 as s from candidates group by 1)")
echo "{\"bench\":\"layer_cache_sweep\",\"candidates\":$(sqlite3 "$work/c_on.db" 'select count(*) from candidates'),\"with_cache_s\":$on,\"without_cache_s\":$off,\"speedup\":$(echo "$off / $on" | bc -l),$stage_times,\"same_candidates\":$same_plans,\"identical_metrics\":$same,\"largest_relative_difference\":$largest}"
