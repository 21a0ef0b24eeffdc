// Qwen1.5-MoE / Qwen2-MoE (modeling_qwen2_moe.py / Qwen2MoeConfig): MoE every
// decoder_sparse_step except mlp_only_layers; one shared expert (mlp.shared_expert.*) scaled
// per token by sigmoid(mlp.shared_expert_gate(x)); softmax router (mlp.gate.weight), top-k
// normalised by its plain sum when norm_topk_prob; q/k/v biases, no o bias.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_qwen2_moe(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape);
  refuse_sliding_window(config, "use_sliding_window", where);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 32768, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", 22016, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 1408, where);
  shape.shared_intermediate_size = positive_or(config, "shared_expert_intermediate_size", 5632, where);
  shape.num_routed_experts = non_negative_or(config, "num_experts", 60, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 4, where);
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
  shape.attention_qkv_bias = true;
  shape.attention_output_bias = false;
  shape.shared_expert_gate = true;
  if (shape.num_routed_experts > 0) check_top_k(shape, where);
  read_qwen_layer_kinds(config, where, shape);
  return shape;
}

}  // namespace

const Family kQwen2MoeFamily{"qwen2_moe", read_qwen2_moe,
                             MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "shared_expert.",
                                            "shared_expert_gate.weight"},
                             /*shared_expert_gate=*/true, /*topk_norm_epsilon=*/0.0, /*topk_norm_min_k=*/1, /*default_rms_norm_eps=*/1e-6, /*default_rope_theta=*/10000,
                             /*reference_experts_kept=*/4};

}  // namespace cdmoe::model
