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
// here as DeepseekV3Attention does. FP8 weights are not supported yet.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_deepseek_v3(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape);
  if (shape.num_key_value_heads != shape.num_attention_heads) {
    throw_bad_input(where + ": field 'num_key_value_heads' is " + std::to_string(shape.num_key_value_heads) +
                    "; latent attention gives every one of the " + std::to_string(shape.num_attention_heads) +
                    " heads its own keys (num_key_value_heads must equal num_attention_heads)");
  }
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 4096, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", 18432, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 2048, where);
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
  a.rope_interleave = bool_or(config, "rope_interleave", true, where);
  if (a.qk_rope_head_dim % 2 != 0) throw_bad_input(where + ": field 'qk_rope_head_dim' must be even (RoPE rotates pairs)");
  shape.head_dim = a.qk_rope_head_dim;  // what RoPE's frequencies are computed over
  shape.num_routed_experts = positive_or(config, "n_routed_experts", 256, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 8, where);
  shape.shared_intermediate_size = non_negative_or(config, "n_shared_experts", 1, where) * shape.expert_intermediate_size;
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", true, where);
  shape.routed_scaling_factor = number_or(config, "routed_scaling_factor", 2.5, where);
  if (!(shape.routed_scaling_factor > 0) || shape.routed_scaling_factor > 1000) {
    throw_bad_input(where + ": field 'routed_scaling_factor' must be in (0, 1000]");
  }
  const std::string scoring = string_or(config, "scoring_func", "sigmoid", where);
  const std::string method = string_or(config, "topk_method", "noaux_tc", where);
  if (scoring != "sigmoid" || method != "noaux_tc") {
    throw_bad_input(where + ": scoring_func \"" + scoring + "\" with topk_method \"" + method +
                    "\" is not implemented for deepseek_v3 (supported: sigmoid with noaux_tc)");
  }
  shape.router = RouterKind::kSigmoidGroups;
  shape.n_group = positive_or(config, "n_group", 8, where);
  shape.topk_group = positive_or(config, "topk_group", 4, where);
  if (shape.num_routed_experts % shape.n_group != 0 || shape.num_routed_experts / shape.n_group < 2) {
    throw_bad_input(where + ": field 'n_group' " + std::to_string(shape.n_group) + " must divide the " +
                    std::to_string(shape.num_routed_experts) + " routed experts into groups of at least 2");
  }
  if (shape.topk_group > shape.n_group) {
    throw_bad_input(where + ": field 'topk_group' " + std::to_string(shape.topk_group) + " exceeds n_group " +
                    std::to_string(shape.n_group));
  }
  check_top_k(shape, where);
  const int64_t first_dense = non_negative_or(config, "first_k_dense_replace", 3, where);
  const int64_t layer_freq = positive_or(config, "moe_layer_freq", 1, where);
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool moe = layer >= first_dense && layer % layer_freq == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
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
