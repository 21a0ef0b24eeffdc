// A random MoE checkpoint of a registered family (config.json + model.safetensors, optionally
// beside a real tokenizer.json whose vocabulary size it takes): for benchmarks, end-to-end tests
// and the README's demo sweep until the project ships a trained demo model. Deterministic per
// seed. The tensors are the tensor table named by the family (model/weight_names.h expected_tensors), so any
// family that loads can be synthesised.
#pragma once

#include <cstdint>
#include <string>

namespace cdmoe::model {

struct SyntheticShape {
  int64_t hidden = 1024, heads = 16, layers = 8, experts = 64, expert_inner = 352, shared = 2, top_k = 6;
  int64_t vocab = 8192, dense_inner = 2816;  // layer 0 is dense where the family has dense layers
  std::string family = "deepseek";  // config.json model_type; mixtral and olmoe have no dense
                                    // layers, and only deepseek and qwen2_moe shared experts
  int64_t max_positions = 4096;
  bool bf16 = true;       // weights stored as BF16 (else F32)
  // deepseek_v3 only: the layers' 2-D projections (not the router) as F8_E4M3 in 128 × 128 blocks
  // with float32 scale_inv, as DeepSeek-V3 ships them (the rest BF16).
  bool fp8 = false;
  int64_t kv_lora_rank = 16, qk_rope_head_dim = 8;  // deepseek_v2/v3's latent and rope sizes
  bool pretrain_init = false;  // transformers' initialisation (N(0, 0.02), norms 1) instead of the test one
  uint64_t seed = 0;
  std::string tokenizer;  // a tokenizer.json to copy beside the weights (its vocabulary size wins),
                          // with the tokenizer_config.json beside it, if any
};

void write_synthetic_checkpoint(const std::string& dir, SyntheticShape shape);

}  // namespace cdmoe::model
