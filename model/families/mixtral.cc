// Mixtral (transformers' modeling_mixtral.py / MixtralConfig, read at v4.57): every layer MoE
// (model.layers.{i}.block_sparse_moe.gate.weight, experts.{e}.w1 = gate, w3 = up, w2 = down,
// each intermediate_size wide); no shared expert; softmax router whose top-k is always divided
// by its sum; explicit head_dim when not null; no attention biases. A non-null sliding_window is
// refused (Mixtral-8x7B/8x22B ship null).
#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_mixtral(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape, /*explicit_head_dim=*/true);
  refuse_sliding_window(config, "", where);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 4096 * 32, where);
  shape.expert_intermediate_size = positive_or(config, "intermediate_size", 14336, where);
  shape.num_routed_experts = positive_or(config, "num_local_experts", 8, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 2, where);
  shape.norm_topk_prob = true;  // MixtralSparseMoeBlock always renormalises the top-k
  check_top_k(shape, where);
  shape.layer_kinds.assign(size_t(shape.num_layers), LayerKind::kMoe);
  return shape;
}

}  // namespace

const Family kMixtralFamily{"mixtral", read_mixtral,
                            MoeWeightNames{"block_sparse_moe.", "gate.weight", "experts.", SwigluNames{"w1", "w3", "w2"}, "", ""},
                            /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/0.0, /*topk_norm_min_k=*/1, /*default_rms_norm_eps=*/1e-5, /*default_rope_theta=*/1e6,
                            /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
