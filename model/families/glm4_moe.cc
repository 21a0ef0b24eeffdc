// GLM-4.5 / GLM-4.5-Air architecture (transformers' modeling_glm4_moe.py / Glm4MoeConfig, read on
// main in 2026): first_k_dense_replace dense layers, then every layer MoE; standard GQA attention
// with an explicit head_dim, q/k/v biases with attention_bias (o_proj never), per-head q/k
// RMSNorm with use_qk_norm, and partial rotary: RoPE on the first head_dim × partial_rotary_factor
// dims of each head (halves layout), the rest passed through; DeepSeek-V3's sigmoid router with
// e_score_correction_bias and group top-k, norm_topk_prob (+1e-20) and routed_scaling_factor;
// n_shared_experts shared experts as one ungated MLP. The multi-token-prediction layer's tensors
// (num_nextn_predict_layers) are ignored, as transformers ignores them.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

// transformers 5 keeps partial_rotary_factor in rope_parameters, 4.x at the top level; the config
// class's default is 0.5.
double partial_rotary_factor(const Json& config, const std::string& where) {
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object() &&
      config["rope_parameters"].contains("partial_rotary_factor")) {
    return number_or(config["rope_parameters"], "partial_rotary_factor", 0.5, where + ": rope_parameters");
  }
  return number_or(config, "partial_rotary_factor", 0.5, where);
}

ModelShape read_glm4_moe(const Json& config, const std::string& where) {
  ModelShape shape;
  if (!config.contains("head_dim") || config["head_dim"].is_null()) {
    // Glm4MoeConfig's own default is not hidden_size / heads: refused rather than guessed.
    throw_bad_input(where + ": field 'head_dim' is required for glm4_moe");
  }
  read_common_shape(config, where, shape, /*explicit_head_dim=*/true);
  refuse_sliding_window(config, "use_sliding_window", where);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 131072, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", 10944, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 1408, where);
  shape.attention_qkv_bias = bool_or(config, "attention_bias", false, where);
  shape.attention_output_bias = false;
  if (bool_or(config, "use_qk_norm", false, where)) shape.qk_norm = QkNorm::kPerHead;
  const double factor = partial_rotary_factor(config, where);
  const int64_t rotary = int64_t(double(shape.head_dim) * factor);  // int() as transformers
  if (!(factor > 0 && factor <= 1) || rotary < 2 || rotary % 2 != 0) {
    throw_bad_input(where + ": field 'partial_rotary_factor' " + std::to_string(factor) +
                    " must be in (0, 1] and rotate an even number of the head's " + std::to_string(shape.head_dim) + " dims");
  }
  shape.rotary_dim = rotary == shape.head_dim ? 0 : rotary;
  shape.num_routed_experts = positive_or(config, "n_routed_experts", 128, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 8, where);
  shape.shared_intermediate_size = non_negative_or(config, "n_shared_experts", 1, where) * shape.expert_intermediate_size;
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", true, where);
  read_routed_scaling_factor(config, where, 1.0, shape);
  shape.router = RouterKind::kSigmoidGroups;
  read_expert_groups(config, where, /*n_group=*/1, /*topk_group=*/1, /*min_group_size=*/2, shape);  // top two per group
  check_top_k(shape, where);
  set_dense_then_moe_layers(non_negative_or(config, "first_k_dense_replace", 1, where), /*every=*/1, shape);
  shape.ignored_trailing_layers = non_negative_or(config, "num_nextn_predict_layers", 0, where);
  return shape;
}

}  // namespace

const Family kGlm4MoeFamily{"glm4_moe", read_glm4_moe,
                            MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "shared_experts.", ""},
                            /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/1e-20, /*topk_norm_min_k=*/1,
                            /*default_rms_norm_eps=*/1e-5, /*default_rope_theta=*/10000,
                            /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
