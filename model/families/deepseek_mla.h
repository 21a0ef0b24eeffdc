// What DeepSeek-V2 and DeepSeek-V3 configs share (transformers' DeepseekV3 derives from
// DeepseekV2): multi-head latent attention, routed and shared expert sizes. Each family's file reads its router on top; defaults differ
// between the two config classes and are passed in.
#pragma once

#include <cstdint>
#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"

namespace cdmoe::model {

// The config class's defaults for keys a config.json may leave out.
struct DeepseekMlaDefaults {
  int64_t max_position_embeddings;
  int64_t intermediate_size;
  int64_t moe_intermediate_size;
  int64_t n_routed_experts;
  int64_t n_shared_experts;
  int64_t num_experts_per_tok;  // 0: required
};

// Fills the common shape, MLA (num_key_value_heads must equal the heads; q_lora_rank null = a
// plain q_proj; an even qk_rope_head_dim, which head_dim becomes), attention_bias (q_a, kv_a, o),
// expert sizes and shared experts (n_shared_experts null = none). Layer kinds are left to the
// family (their rules differ). Errors name `where` and the key.
void read_deepseek_mla_shape(const Json& config, const std::string& where, const DeepseekMlaDefaults& defaults,
                             ModelShape& shape);

}  // namespace cdmoe::model
