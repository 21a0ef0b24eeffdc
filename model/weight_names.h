// The Hugging Face names of the tensor table's tensors (core/tensor_table.h, which owns every
// shape), built from the family's weight-name table (model/family.h). Load reads by them,
// export writes by them, and the checkpoint's header is checked against them before anything
// is allocated: a tensor missing, extra, of another shape or of a dtype the project cannot read
// is bad input naming the file and tensor.
// Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/tensor_table.h"
#include "model/checkpoint.h"
#include "model/model_config.h"

namespace cdmoe::model {

// A SwiGLU MLP's three projections under `prefix`: prefix + "gate_proj.weight", ... (or the
// family's own projection names, e.g. Mixtral's experts' "w1", "w3", "w2").
struct MlpNames {
  std::string gate, up, down;
};
MlpNames mlp_names(const std::string& prefix, const SwigluNames& projections = kSwigluNames);

struct LayerNames {
  std::string input_norm, post_norm;
  std::string q, k, v, o, q_bias, k_bias, v_bias, o_bias;
  std::string q_norm, k_norm;  // families with QK normalisation (ModelShape::qk_norm)
  // Latent attention (ModelShape::latent_attention): q_proj (q above) or the q_a/q_b pair.
  std::string q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, q_a_bias, kv_a_bias;
  MlpNames mlp;             // a dense layer's MLP, or an exported condensed layer's fused one
  std::string block;        // the MoE block's prefix: "model.layers.{i}." + the family's block name
  std::string router;       // [E, D]
  std::string router_bias;  // [E] DeepSeek-V3's e_score_correction_bias (RouterKind::kSigmoidGroups)
  MlpNames shared;          // the shared expert(s) as one MLP
  std::string shared_gate;  // [1, D]; empty when the family has none
  std::string experts_prefix;
  SwigluNames expert_projections;
  std::string fused_gate_up, fused_down;  // transformers 5's fused experts (ModelConfig::expert_layout)
  MlpNames expert(int64_t e) const;  // routed expert e (renumbered 0..r-1 in an exported pruned layer)
};
// `fused`: the names of transformers 5's layout, whose MoE block is "mlp." in every family
// (Mixtral's block_sparse_moe is renamed) with the experts fused.
LayerNames layer_names(const Family& family, int layer, bool fused = false);

inline constexpr const char* kEmbedTokensName = "model.embed_tokens.weight";
inline constexpr const char* kFinalNormName = "model.norm.weight";
inline constexpr const char* kLmHeadName = "lm_head.weight";

// The Hugging Face name of one tensor of the table (core/tensor_table.h): `names` are its
// layer's (ignored for the embedding, final norm and head), `expert` numbers a per-expert
// entry's expert (-1 otherwise).
std::string tensor_name(const LayerNames& names, const TensorEntry& entry, int64_t expert);

// Walks `entries` in checkpoint order (for_each_tensor) with each tensor's name. A layer's names
// are fused (layer_names) when `layout` is fused and `planned` leaves the layer as it is.
void for_each_named_tensor(const Family& family, const std::vector<TensorEntry>& entries, ExpertLayout layout,
                           const Plan& planned,
                           const std::function<void(const TensorEntry&, int64_t expert, const std::string& name)>& visit);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a checkpoint of `config` holds, in load order; `fixed` is an exported
// checkpoint's own plan (its config.json "cdmoe" block; empty for an original checkpoint).
// lm_head.weight is left out when the embeddings are tied (a checkpoint may still carry it).
std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const Plan& fixed);

// The header check: every expected tensor present with its shape and a readable dtype, and no
// tensor that the config does not imply. Reads headers only.
void check_checkpoint_tensors(const Checkpoint& checkpoint, const ModelConfig& config, const Plan& fixed);

// config.json read with its family, and the experts' layout detected from the headers (fused
// when the first MoE layer the checkpoint keeps holds a fused gate_up_proj).
ModelConfig read_checkpoint_config(const Checkpoint& checkpoint);

// The tensor table of the checkpoint as it is (its config and its own plan, fixed_plan_of).
std::vector<TensorEntry> checkpoint_tensor_table(const Checkpoint& checkpoint);

// The plan an exported checkpoint carries in config.json ("cdmoe": {"plan": ...}), validated
// against the shape; empty when it has none.
Plan fixed_plan_of(const Checkpoint& checkpoint, const ModelShape& shape);

std::string shape_text(const std::vector<int64_t>& shape);  // "[2, 3]"

}  // namespace cdmoe::model
