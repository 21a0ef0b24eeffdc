// DeepSeek-V3 / R1, Moonlight, Kimi-K2 architecture (transformers' modeling_deepseek_v3.py /
// DeepseekV3Config, read at v4.57 and v5): first_k_dense_replace dense layers, then MoE every
// moe_layer_freq; multi-head latent attention (q_proj, or q_a_proj + q_a_layernorm + q_b_proj
// with q_lora_rank; kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj; RoPE on the qk_rope_head_dim
// part, pairs interleaved when rope_interleave; biases on q_a, kv_a and o with attention_bias);
// sigmoid router (mlp.gate.weight) with e_score_correction_bias for the choice only, group top-k
// (n_group, topk_group), the top-k divided by its sum + 1e-20 when norm_topk_prob, then times
// routed_scaling_factor; n_shared_experts shared experts as one ungated MLP. The multi-token
// prediction layer's tensors (layers num_hidden_layers.. num_hidden_layers +
// num_nextn_predict_layers - 1) are not part of the causal LM and are ignored, as transformers
// ignores them. YaRN (model/model_config.h) scales the softmax by mscale(factor, mscale_all_dim)^2
// here as DeepseekV3Attention does. What V3 shares with V2 is read in deepseek_v2.cc.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/deepseek_mla.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_deepseek_v3(const Json& config, const std::string& where) {
  ModelShape shape;
  read_deepseek_mla_shape(config, where,
                          {/*max_position_embeddings=*/4096, /*intermediate_size=*/18432, /*moe_intermediate_size=*/2048,
                           /*n_routed_experts=*/256, /*n_shared_experts=*/1, /*num_experts_per_tok=*/8},
                          shape);
  shape.latent.rope_interleave = bool_or(config, "rope_interleave", true, where);
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", true, where);
  read_routed_scaling_factor(config, where, 2.5, shape);
  const std::string scoring = string_or(config, "scoring_func", "sigmoid", where);
  const std::string method = string_or(config, "topk_method", "noaux_tc", where);
  if (scoring != "sigmoid" || method != "noaux_tc") {
    throw_bad_input(where + ": scoring_func \"" + scoring + "\" with topk_method \"" + method +
                    "\" is not implemented for deepseek_v3 (supported: sigmoid with noaux_tc)");
  }
  shape.router = RouterKind::kSigmoidGroups;
  read_expert_groups(config, where, /*n_group=*/8, /*topk_group=*/4, /*min_group_size=*/2, shape);  // a group's score is its top two
  set_dense_then_moe_layers(non_negative_or(config, "first_k_dense_replace", 3, where),
                            positive_or(config, "moe_layer_freq", 1, where), shape);
  shape.ignored_trailing_layers = non_negative_or(config, "num_nextn_predict_layers", 0, where);
  return shape;
}

}  // namespace

const Family kDeepseekV3Family{"deepseek_v3", read_deepseek_v3,
                               MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "shared_experts.", ""},
                               /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/1e-20, /*topk_norm_min_k=*/1,
                               /*default_rms_norm_eps=*/1e-6, /*default_rope_theta=*/10000,
                               /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
