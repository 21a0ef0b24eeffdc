#!/usr/bin/env bash
# cdmoe-export's time and peak memory on a DeepSeekMoE-16B-shaped synthetic checkpoint cut to
# LAYERS decoder layers (hidden 2048, 16 heads, 64 routed experts of 1408 and 2 shared, top-6,
# vocabulary 102,400, layer 0 dense of 10,944; float32 on disk as cdmoe-synth writes it), one
# JSON line per export: the original and 3 layers condensed to shared + 6 experts, written as
# stock qwen2_moe in bfloat16 in shards of SHARD_MB. Needs about 9 GB of disk at LAYERS=4 (each
# layer adds ~2.3 GB of float32 weights) and about 5 GB of memory, whatever LAYERS (the export
# streams: one condensed layer's source in float32, the embedding and the head).
# Usage: bench/export_bench.sh [BUILD_DIR] [LAYERS] [SHARD_MB]   (run from the repository root)
set -euo pipefail
build=${1:-build} layers=${2:-4} shard_mb=${3:-2000}
bin=$build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/cdmoe-synth" --out "$work/model" --family deepseek --hidden 2048 --heads 16 --layers "$layers" --experts 64 \
  --expert-inner 1408 --shared 2 --top-k 6 --vocab 102400 --dense-inner 10944 --max-positions 4096 >/dev/null
echo '{"layers":{}}' > "$work/original.json"
python3 -c "
import json, sys
print(json.dumps({'layers': {str(l): {'op': 'condense', 'experts': list(range(6)), 'weights': [0.1] * 6}
                             for l in range(1, min(4, int(sys.argv[1])))}}))" "$layers" > "$work/condensed.json"
source_bytes=$(du -b "$work/model/model.safetensors" | cut -f1)
for plan in original condensed; do
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin/cdmoe-export" --model "$work/model" --plan "$work/$plan.json" \
    --out "$work/out-$plan" --dtype bfloat16 --max-shard-mb "$shard_mb" >/dev/null
  read -r seconds peak_kb < "$work/time"
  written=$(du -cb "$work/out-$plan"/*.safetensors | tail -1 | cut -f1)
  largest=$(du -b "$work/out-$plan"/*.safetensors | sort -n | tail -1 | cut -f1)
  shards=$(ls "$work/out-$plan"/*.safetensors | wc -l)
  echo "{\"bench\":\"export\",\"plan\":\"$plan\",\"layers\":$layers,\"source_f32_bytes\":$source_bytes,\"written_bf16_bytes\":$written,\"shards\":$shards,\"largest_shard_bytes\":$largest,\"seconds\":$seconds,\"peak_rss_bytes\":$((peak_kb * 1024))}"
  rm -rf "$work/out-$plan"
done
