// Qwen3-MoE (transformers' modeling_qwen3_moe.py / Qwen3MoeConfig, read at v4.57 and v5): MoE
// every decoder_sparse_step except mlp_only_layers (dense layers use intermediate_size); no
// shared expert; softmax router (mlp.gate.weight), top-k divided by its sum when
// norm_topk_prob; explicit head_dim (Qwen3-30B-A3B: 128, not 2048 / 32); per-head q/k RMSNorm
// (self_attn.q_norm / k_norm, weights [head_dim]) before RoPE; biases on q/k/v/o with
// attention_bias. Sliding-window attention (use_sliding_window) is refused.
#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_qwen3_moe(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape, /*explicit_head_dim=*/true);
  refuse_sliding_window(config, "use_sliding_window", where);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 32768, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", 6144, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 768, where);
  shape.num_routed_experts = non_negative_or(config, "num_experts", 128, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 8, where);
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
  shape.attention_qkv_bias = shape.attention_output_bias = bool_or(config, "attention_bias", false, where);
  shape.qk_norm = QkNorm::kPerHead;
  if (shape.num_routed_experts > 0) check_top_k(shape, where);
  read_qwen_layer_kinds(config, where, shape);
  return shape;
}

}  // namespace

const Family kQwen3MoeFamily{"qwen3_moe", read_qwen3_moe,
                             MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "", ""},
                             /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/0.0, /*topk_norm_min_k=*/1, /*default_rms_norm_eps=*/1e-6, /*default_rope_theta=*/10000,
                             /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
