// A model family (ARCHITECTURE.md §4): everything that differs between MoE architectures, owned
// by one file under model/families/ and registered by `model_type` in family.cc's one table
// (or by register_family):
//   - its config.json reader (the family's transformers config class: keys and defaults),
//   - its weight-name table (the Hugging Face tensor names of the MoE block; load and export
//     both build every name from it, model/weight_names.h),
//   - its MoE block's differences (shared-expert gate, top-k normalisation).
// The attention and router kinds and their options (explicit head_dim, biases, q/k norms,
// clip_qkv, MLA, group routers) are facts of the config that the reader puts into ModelShape;
// every tensor's shape follows from them in core's tensor table (core/tensor_table.h), so a
// family writes names, never shapes.
// Torch-free: core's ModelShape plus constants. Families are immutable statics; lookups are
// thread-safe once registration is over.
#pragma once

#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"

namespace cdmoe::model {

// The three projections of one SwiGLU expert, each followed by ".weight".
struct SwigluNames {
  const char* gate;  // silu(gate x) * up x, then down
  const char* up;
  const char* down;
};
inline constexpr SwigluNames kSwigluNames{"gate_proj", "up_proj", "down_proj"};  // transformers' MLP classes

// Tensor names of one decoder layer's MoE block, relative to "model.layers.{i}." + block.
struct MoeWeightNames {
  const char* block;        // "mlp." (most families) / "block_sparse_moe." (mixtral)
  const char* router;       // "gate.weight": [E, D]
  const char* experts;      // "experts.": then "{e}." + expert projection + ".weight"
  SwigluNames expert;       // the routed experts' projection names
  const char* shared_mlp;   // "shared_experts." (deepseek) / "shared_expert." (qwen2_moe); unused without shared experts
  const char* shared_gate;  // "shared_expert_gate.weight" [1, D], or "" when the family has none
};

// reference_experts_kept for families whose default k is the config's own top-k.
inline constexpr int kExpertsPerToken = -1;

struct Family {
  const char* model_type;  // config.json "model_type"
  ModelShape (*read_shape)(const Json& config, const std::string& where);
  MoeWeightNames names;
  bool shared_expert_gate;   // sigmoid(Linear(D, 1)) scales the shared expert per token (qwen2_moe)
  double topk_norm_epsilon;  // added to the top-k sum when norm_topk_prob (deepseek: 1e-20)
  int topk_norm_min_k;       // the top-k is normalised only when k is at least this (deepseek: 2)
  double default_rms_norm_eps;  // the config class's defaults, for a config.json without them
  double default_rope_theta;
  // The routed experts the CD-MoE reference keeps per condensed layer in its runs of this family
  // (k = 6 for DeepSeekMoE, 4 for Qwen-MoE), or kExpertsPerToken for families the paper did not
  // run (the config's num_experts_per_tok): cdmoe-sweep's --experts-kept auto is "0,k" for a
  // model with shared experts and "k" for one without (k = 0 would condense to nothing).
  int reference_experts_kept;
};

// Adds a family defined outside model/families/ (a plugin, a test); `family` must outlive every
// use. Not thread-safe: call before any config is read. A model_type registered twice is an error.
void register_family(const Family& family);

// The family registered for `model_type`; bad input naming `where` and the supported ones.
const Family& find_family(const std::string& model_type, const std::string& where);
// The k that cdmoe-sweep's --experts-kept auto uses for this model (see reference_experts_kept).
int reference_experts_kept(const ModelShape& shape);
// "deepseek, qwen2_moe, ...", for messages.
std::string supported_model_types();

// Reads config.json (already parsed) with its family's reader; `where` names it in errors.
ModelShape model_shape_from_config(const Json& config, const std::string& where);
// Accepts a model directory (reads DIR/config.json) or the path of a config.json.
ModelShape read_model_shape(const std::string& model_dir_or_config);

}  // namespace cdmoe::model
