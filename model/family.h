// A model family (ARCHITECTURE.md §4): everything that differs between MoE architectures, owned
// by one file under model/families/ and registered by `model_type` in family.cc's one table:
//   - its config.json reader (the family's transformers config class: keys and defaults),
//   - its weight-name table (the Hugging Face tensor names of the MoE block; load and export
//     both build every name from it, model/weight_names.h),
//   - its MoE block's differences (shared-expert gate, top-k normalisation).
// Torch-free: core's ModelShape plus constants. Families are immutable statics; thread-safe.
#pragma once

#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"

namespace cdmoe::model {

// Tensor names inside one decoder layer's MLP, relative to "model.layers.{i}.mlp.".
struct MoeWeightNames {
  const char* router;       // "gate.weight": [E, D]
  const char* experts;      // "experts.": then "{e}.gate_proj.weight" ...
  const char* shared_mlp;   // "shared_experts." (deepseek) / "shared_expert." (qwen2_moe)
  const char* shared_gate;  // "shared_expert_gate.weight" [1, D], or "" when the family has none
};

struct Family {
  const char* model_type;  // config.json "model_type"
  ModelShape (*read_shape)(const Json& config, const std::string& where);
  MoeWeightNames names;
  bool shared_expert_gate;   // sigmoid(Linear(D, 1)) scales the shared expert per token (qwen2_moe)
  double topk_norm_epsilon;  // added to the top-k sum when norm_topk_prob (deepseek: 1e-20)
  // The routed experts the CD-MoE reference keeps per condensed layer in its runs of this family
  // (k = 6 for DeepSeekMoE, 4 for Qwen-MoE): cdmoe-sweep's default --experts-kept is "0,k".
  int reference_experts_kept;
};

// The family registered for `model_type`; bad input naming `where` and the supported ones.
const Family& find_family(const std::string& model_type, const std::string& where);
// "deepseek, qwen2_moe", for messages.
std::string supported_model_types();

// Reads config.json (already parsed) with its family's reader; `where` names it in errors.
ModelShape model_shape_from_config(const Json& config, const std::string& where);
// Accepts a model directory (reads DIR/config.json) or the path of a config.json.
ModelShape read_model_shape(const std::string& model_dir_or_config);

}  // namespace cdmoe::model
