// Qwen1.5-MoE / Qwen2-MoE (modeling_qwen2_moe.py / Qwen2MoeConfig): MoE every
// decoder_sparse_step except mlp_only_layers; one shared expert (mlp.shared_expert.*) scaled
// per token by sigmoid(mlp.shared_expert_gate(x)); softmax router (mlp.gate.weight), top-k
// normalised by its plain sum when norm_topk_prob; q/k/v biases, no o bias.
#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_qwen2_moe(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape);
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
  int64_t sparse_step = positive_or(config, "decoder_sparse_step", 1, where);
  std::vector<int64_t> mlp_only;
  if (config.contains("mlp_only_layers") && !config["mlp_only_layers"].is_null()) {
    const Json& list = config["mlp_only_layers"];
    if (!list.is_array()) throw_bad_input(where + ": field 'mlp_only_layers' must be an array of layer indices");
    for (const Json& item : list) {
      if (!item.is_number_integer()) {
        throw_bad_input(where + ": field 'mlp_only_layers' holds " + describe_json(item) + ", not a layer index");
      }
      mlp_only.push_back(item.get<int64_t>());
    }
  }
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool listed = std::find(mlp_only.begin(), mlp_only.end(), layer) != mlp_only.end();
    bool moe = !listed && shape.num_routed_experts > 0 && (layer + 1) % sparse_step == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
  return shape;
}

}  // namespace

const Family kQwen2MoeFamily{"qwen2_moe", read_qwen2_moe,
                             MoeWeightNames{"gate.weight", "experts.", "shared_expert.", "shared_expert_gate.weight"},
                             /*shared_expert_gate=*/true, /*topk_norm_epsilon=*/0.0,
                             /*reference_experts_kept=*/4};

}  // namespace cdmoe::model
