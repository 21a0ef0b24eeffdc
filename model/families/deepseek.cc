// DeepSeekMoE v1 (modeling_deepseek.py / DeepseekConfig): first_k_dense_replace dense layers,
// then MoE every moe_layer_freq; n_shared_experts shared experts as one ungated MLP
// (mlp.shared_experts.*); softmax router (mlp.gate.weight), top-k normalised over sum + 1e-20
// when norm_topk_prob; attention biases only with attention_bias.
#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_deepseek(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 2048, where);
  shape.dense_intermediate_size = require_positive(config, "intermediate_size", where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 1407, where);
  bool attention_bias = bool_or(config, "attention_bias", false, where);
  shape.attention_qkv_bias = shape.attention_output_bias = attention_bias;
  // n_routed_experts null means a dense model in DeepseekConfig.
  const int64_t routed = non_negative_or(config, "n_routed_experts", 0, where);
  shape.num_routed_experts = routed;
  int64_t first_dense = non_negative_or(config, "first_k_dense_replace", 0, where);
  int64_t layer_freq = positive_or(config, "moe_layer_freq", 1, where);
  if (routed > 0) {
    shape.experts_per_token = require_positive(config, "num_experts_per_tok", where);
    int64_t shared = non_negative_or(config, "n_shared_experts", 0, where);
    shape.shared_intermediate_size = shared * shape.expert_intermediate_size;
    shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
    std::string scoring = string_or(config, "scoring_func", "softmax", where);
    if (scoring != "softmax") {
      throw_bad_input(where + ": field 'scoring_func' is \"" + scoring + "\"; only \"softmax\" is supported");
    }
    check_top_k(shape, where);
  }
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool moe = routed > 0 && layer >= first_dense && layer % layer_freq == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
  return shape;
}

}  // namespace

const Family kDeepseekFamily{"deepseek", read_deepseek,
                             MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "shared_experts.", ""},
                             /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/1e-20, /*topk_norm_min_k=*/2, /*default_rms_norm_eps=*/1e-6, /*default_rope_theta=*/10000,
                             /*reference_experts_kept=*/6};

}  // namespace cdmoe::model
