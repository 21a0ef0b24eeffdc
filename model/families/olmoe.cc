// OLMoE (transformers' modeling_olmoe.py / OlmoeConfig, read at v4.57): every layer MoE
// (mlp.gate.weight, mlp.experts.{e}.*_proj, each intermediate_size wide); no shared expert;
// softmax router, top-k divided by its sum when norm_topk_prob (default false); q/k RMSNorm over
// the whole projection (self_attn.q_norm [H·d], k_norm [KV·d]) before the head split, then q, k,
// v clamped to ±clip_qkv when set; biases on q/k/v/o with attention_bias.
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/config_reading.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

ModelShape read_olmoe(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common_shape(config, where, shape);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 4096, where);
  shape.expert_intermediate_size = positive_or(config, "intermediate_size", 2048, where);
  shape.num_routed_experts = positive_or(config, "num_experts", 64, where);
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 8, where);
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
  shape.attention_qkv_bias = shape.attention_output_bias = bool_or(config, "attention_bias", false, where);
  shape.qk_norm = QkNorm::kWholeProjection;
  if (config.contains("clip_qkv") && !config["clip_qkv"].is_null()) {
    shape.clip_qkv = require_number(config, "clip_qkv", where);
    if (!(shape.clip_qkv > 0) || !std::isfinite(shape.clip_qkv)) {
      throw_bad_input(where + ": field 'clip_qkv' must be a positive finite number or null, got " +
                      config["clip_qkv"].dump());
    }
  }
  check_top_k(shape, where);
  shape.layer_kinds.assign(size_t(shape.num_layers), LayerKind::kMoe);
  return shape;
}

}  // namespace

const Family kOlmoeFamily{"olmoe", read_olmoe, MoeWeightNames{"mlp.", "gate.weight", "experts.", kSwigluNames, "", ""},
                          /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/0.0, /*topk_norm_min_k=*/1, /*default_rms_norm_eps=*/1e-5, /*default_rope_theta=*/10000,
                          /*reference_experts_kept=*/kExpertsPerToken};

}  // namespace cdmoe::model
