// ModelConfig: everything the forward pass needs from config.json beyond core's ModelShape
// (norm epsilon, RoPE), and the per-family traits that shape the MoE block. Unsupported
// options are refused by name (hidden_act other than silu, rope_scaling other than linear).
#pragma once

#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"

namespace cdmoe::model {

// What differs between families inside the shared MoE block (DESIGN.md §4: one table line
// and one traits definition per family).
struct FamilyTraits {
  const char* model_type;
  const char* shared_prefix;     // "shared_experts" (deepseek) or "shared_expert" (qwen2_moe)
  bool shared_expert_gate;       // qwen2_moe: sigmoid(Linear(D, 1)) scales the shared expert
  double topk_norm_epsilon;      // added to the top-k sum when norm_topk_prob (deepseek: 1e-20)
};

struct ModelConfig {
  ModelShape shape;
  FamilyTraits traits;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  double rope_linear_factor = 1;  // positions are divided by it (rope_scaling linear)
};

ModelConfig model_config_from_json(const Json& config, const std::string& where);

const FamilyTraits& family_traits(const std::string& model_type);

}  // namespace cdmoe::model
