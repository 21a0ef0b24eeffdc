// DeepSeek-V2 / V2-Lite / V2.5 architecture (transformers' modeling_deepseek_v2.py /
// DeepseekV2Config, read on main in 2026 including PR #47435, which gave V2 the YaRN softmax
// mscale^2 that DeepSeek's own code applies): first_k_dense_replace dense layers, then every layer
// MoE (transformers ignores moe_layer_freq; one other than 1 is refused rather than guessed);
// multi-head latent attention as DeepSeek-V3's (model/families/deepseek_mla.h), RoPE on
// adjacent pairs of the rope part (rope_interleave, always); softmax router over float32
// logits, topk_method "greedy" (plain top-k) or "group_limited_greedy" (the topk_group of
// n_group groups with the largest single probability, top-k in them, the other groups' experts
// scored 0), the top-k weights never normalised (transformers ignores norm_topk_prob, DeepSeek's
// code normalises without scaling: true is refused) and multiplied by routed_scaling_factor;
// n_shared_experts shared experts as one ungated MLP.
//
// This file also reads what V3 shares with V2 (deepseek_mla.h).
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/deepseek_mla.h"
#include "model/families/families.h"

namespace cdmoe::model {

void read_deepseek_mla_shape(const Json& config, const std::string& where, const DeepseekMlaDefaults& defaults,
                             ModelShape& shape) {
  read_common_shape(config, where, shape);
  if (shape.num_key_value_heads != shape.num_attention_heads) {
    throw_bad_input(where + ": field 'num_key_value_heads' is " + std::to_string(shape.num_key_value_heads) +
                    "; latent attention gives every one of the " + std::to_string(shape.num_attention_heads) +
                    " heads its own keys (num_key_value_heads must equal num_attention_heads)");
  }
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", defaults.max_position_embeddings, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", defaults.intermediate_size, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", defaults.moe_intermediate_size, where);
  shape.attention_qkv_bias = false;
  shape.attention_output_bias = bool_or(config, "attention_bias", false, where);  // q_a, kv_a and o
  shape.latent_attention = true;
  LatentAttention& a = shape.latent;
  a.q_lora_rank = config.contains("q_lora_rank") && config["q_lora_rank"].is_null() ? 0
                                                                                    : positive_or(config, "q_lora_rank", 1536, where);
  a.kv_lora_rank = positive_or(config, "kv_lora_rank", 512, where);
  a.qk_nope_head_dim = positive_or(config, "qk_nope_head_dim", 128, where);
  a.qk_rope_head_dim = positive_or(config, "qk_rope_head_dim", 64, where);
  a.v_head_dim = positive_or(config, "v_head_dim", 128, where);
  if (a.qk_rope_head_dim % 2 != 0) throw_bad_input(where + ": field 'qk_rope_head_dim' must be even (RoPE rotates pairs)");
  shape.head_dim = a.qk_rope_head_dim;  // what RoPE's frequencies are computed over
  shape.num_routed_experts = positive_or(config, "n_routed_experts", defaults.n_routed_experts, where);
  shape.experts_per_token = defaults.num_experts_per_tok == 0
                                ? require_positive(config, "num_experts_per_tok", where)
                                : positive_or(config, "num_experts_per_tok", defaults.num_experts_per_tok, where);
  const bool no_shared = config.contains("n_shared_experts") && config["n_shared_experts"].is_null();
  shape.shared_intermediate_size =
      no_shared ? 0 : non_negative_or(config, "n_shared_experts", defaults.n_shared_experts, where) * shape.expert_intermediate_size;
  check_top_k(shape, where);
}

namespace {

ModelShape read_deepseek_v2(const Json& config, const std::string& where) {
  ModelShape shape;
  read_deepseek_mla_shape(config, where,
                          {/*max_position_embeddings=*/2048, /*intermediate_size=*/11008, /*moe_intermediate_size=*/1407,
                           /*n_routed_experts=*/64, /*n_shared_experts=*/2, /*num_experts_per_tok=*/0},
                          shape);
  shape.latent.rope_interleave = true;  // apply_rotary_emb: view_as_complex of adjacent pairs
  if (bool_or(config, "mlp_bias", false, where)) {
    throw_bad_input(where + ": field 'mlp_bias' true (biases on the MLPs) is not supported");
  }
  if (bool_or(config, "norm_topk_prob", false, where)) {
    throw_bad_input(where + ": field 'norm_topk_prob' true is not implemented for deepseek_v2 (transformers ignores it, "
                    "DeepSeek's own code normalises the top-k instead of scaling it)");
  }
  shape.norm_topk_prob = false;
  read_routed_scaling_factor(config, where, 1.0, shape);
  const std::string scoring = string_or(config, "scoring_func", "softmax", where);
  const std::string method = string_or(config, "topk_method", "greedy", where);
  if (scoring != "softmax" || (method != "greedy" && method != "group_limited_greedy")) {
    throw_bad_input(where + ": scoring_func \"" + scoring + "\" with topk_method \"" + method +
                    "\" is not implemented for deepseek_v2 (supported: softmax with greedy or group_limited_greedy)");
  }
  if (method == "group_limited_greedy") {
    shape.router = RouterKind::kSoftmaxGroups;
    // DeepseekV2Config leaves n_group and topk_group null: group_limited_greedy needs both.
    shape.n_group = require_positive(config, "n_group", where);
    read_expert_groups(config, where, shape.n_group, require_positive(config, "topk_group", where), /*min_group_size=*/1, shape);
  }
  if (positive_or(config, "moe_layer_freq", 1, where) != 1) {
    throw_bad_input(where + ": field 'moe_layer_freq' other than 1 is not supported for deepseek_v2 (transformers "
                    "makes every layer from first_k_dense_replace on MoE, DeepSeek's own code every moe_layer_freq-th)");
  }
  set_dense_then_moe_layers(non_negative_or(config, "first_k_dense_replace", 0, where), /*every=*/1, shape);
  return shape;
}

}  // namespace

const Family kDeepseekV2Family{"deepseek_v2", read_deepseek_v2,
                               MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "shared_experts.", ""},
                               /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/0, /*topk_norm_min_k=*/1,
                               /*default_rms_norm_eps=*/1e-6, /*default_rope_theta=*/10000,
                               /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
