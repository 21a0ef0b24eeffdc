#!/usr/bin/env bash
# Fine-tuning cost on a synthetic 6-layer checkpoint (cdmoe-synth: hidden 128, 5 MoE layers of 16
# experts, Llama-2's tokenizer), one JSON line each, from cdmoe-train's train_summary.json and
# train_log.jsonl (the training loop only: loading and tokenising are not counted):
#   - condensed-only (3 layers condensed to shared + 2 experts) against --train all on the same
#     model, batch 8 × 128 tokens, 2 threads: tokens/s, peak RSS, time per step by phase;
#   - data-parallel efficiency: the condensed run on 1 rank (batch 8) and on 2 ranks (batch 4
#     each, the same global batch), one thread per rank: efficiency = t1 / (2 · t2) per step.
# Usage: bench/train_bench.sh [BUILD_DIR]   (run from the repository root)
set -euo pipefail
build=${1:-build}
bin=$build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/cdmoe-synth" --out "$work/model" --tokenizer third_party/tokenizers/llama2/tokenizer.json \
  --hidden 128 --heads 4 --layers 6 --experts 16 --expert-inner 64 --top-k 4 --seed 1 2>/dev/null
cat > "$work/plan.json" <<'PLAN'
{"layers": {"3": {"op": "condense", "experts": [0, 1], "weights": [0.2, 0.2]},
            "4": {"op": "condense", "experts": [2, 3], "weights": [0.2, 0.2]},
            "5": {"op": "condense", "experts": [4, 5], "weights": [0.2, 0.2]}}}
PLAN
steps=${STEPS:-12}
common=(--model "$work/model" --data examples/calibration.jsonl --seq-len 128 --steps "$steps" --lr 1e-4 --checkpoint-every 0)

phases() {  # mean seconds per step of each phase, from the log
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
keys = ["forward_s", "backward_s", "reduce_s", "optimizer_s"]
print(",".join(f'"{k}":{sum(r[k] for r in rows) / len(rows):.4f}' for k in keys))
PY
}
summary() {  # tokens/s, peak RSS and seconds per step of a run directory
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/train_summary.json"))
print(f'"tokens_per_s":{s["tokens_per_s"]:.1f},"peak_rss_mib":{s["peak_rss_bytes"] / 2**20:.0f},'
      f'"s_per_step":{s["train_s"] / s["steps_this_process"]:.4f},"trainable_parameters":{s["trainable_parameters"]}')
PY
}

"$bin/cdmoe-train" "${common[@]}" --plan "$work/plan.json" --batch-size 8 --threads 2 --out "$work/condensed" 2>/dev/null >/dev/null
echo "{\"bench\":\"finetune\",\"train\":\"condensed\",$(summary "$work/condensed"),$(phases "$work/condensed/train_log.jsonl")}"
"$bin/cdmoe-train" "${common[@]}" --train all --batch-size 8 --threads 2 --out "$work/all" 2>/dev/null >/dev/null
echo "{\"bench\":\"finetune\",\"train\":\"all\",$(summary "$work/all"),$(phases "$work/all/train_log.jsonl")}"

mpirun -np 1 "$bin/cdmoe-train" "${common[@]}" --plan "$work/plan.json" --batch-size 8 --threads 1 --out "$work/dp1" 2>/dev/null >/dev/null
mpirun -np 2 "$bin/cdmoe-train" "${common[@]}" --plan "$work/plan.json" --batch-size 4 --threads 1 --out "$work/dp2" 2>/dev/null >/dev/null
t1=$(python3 -c "import json;s=json.load(open('$work/dp1/train_summary.json'));print(s['train_s']/s['steps_this_process'])")
t2=$(python3 -c "import json;s=json.load(open('$work/dp2/train_summary.json'));print(s['train_s']/s['steps_this_process'])")
echo "{\"bench\":\"finetune_data_parallel\",\"one_rank_s_per_step\":$t1,\"two_ranks_s_per_step\":$t2,\"efficiency\":$(python3 -c "print(round($t1 / (2 * $t2), 3))"),\"two_ranks_phases\":{$(phases "$work/dp2/train_log.jsonl")}}"
