#!/usr/bin/env bash
# cdmoe-export's time and peak memory on a DeepSeekMoE-16B-shaped synthetic checkpoint cut to
# LAYERS decoder layers (hidden 2048, 16 heads, 64 routed experts of 1408 and 2 shared, top-6,
# vocabulary 102,400, layer 0 dense of 10,944), one JSON line per export:
#  1. cdmoe-synth's float32 single file exported unchanged as stock qwen2_moe in bfloat16, in
#     shards of SHARD_MB: the bf16 sharded checkpoint a user starts from;
#  2. from that checkpoint, the original and every MoE layer condensed to shared + 6 experts,
#     written the same way.
# Needs about 2 × 2.3 GB of disk per layer and about 5 GB of memory whatever LAYERS (the export
# streams: one condensed layer's source in float32, the embedding and the head).
# Usage: bench/export_bench.sh [BUILD_DIR] [LAYERS] [SHARD_MB]   (run from the repository root)
set -euo pipefail
build=${1:-build} layers=${2:-4} shard_mb=${3:-2000}
bin=$build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/cdmoe-synth" --out "$work/f32" --family deepseek --hidden 2048 --heads 16 --layers "$layers" --experts 64 \
  --expert-inner 1408 --shared 2 --top-k 6 --vocab 102400 --dense-inner 10944 --max-positions 4096 >/dev/null
echo '{"layers":{}}' > "$work/original.json"
python3 -c "
import json, sys
print(json.dumps({'layers': {str(l): {'op': 'condense', 'experts': list(range(6)), 'weights': [0.1] * 6, 'shared_weight': 0.5}
                             for l in range(1, int(sys.argv[1]))}}))" "$layers" > "$work/condensed.json"

# export_one SOURCE_DIR PLAN OUT: times one export and prints its line.
export_one() {
  local source=$1 plan=$2 out=$3
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin/cdmoe-export" --model "$source" --plan "$work/$plan.json" \
    --out "$out" --dtype bfloat16 --max-shard-mb "$shard_mb" >/dev/null
  read -r seconds peak_kb < "$work/time"
  local source_bytes written largest shards source_files
  source_bytes=$(du -cb "$source"/*.safetensors | tail -1 | cut -f1)
  source_files=$(ls "$source"/*.safetensors | wc -l)
  written=$(du -cb "$out"/*.safetensors | tail -1 | cut -f1)
  largest=$(du -b "$out"/*.safetensors | sort -n | tail -1 | cut -f1)
  shards=$(ls "$out"/*.safetensors | wc -l)
  echo "{\"bench\":\"export\",\"source\":\"$(basename "$source")\",\"source_files\":$source_files,\"plan\":\"$plan\",\"layers\":$layers,\"source_bytes\":$source_bytes,\"written_bf16_bytes\":$written,\"shards\":$shards,\"largest_shard_bytes\":$largest,\"seconds\":$seconds,\"peak_rss_bytes\":$((peak_kb * 1024))}"
}

export_one "$work/f32" original "$work/bf16"
rm -rf "$work/f32"
for plan in original condensed; do
  export_one "$work/bf16" "$plan" "$work/out-$plan"
  rm -rf "$work/out-$plan"
done
