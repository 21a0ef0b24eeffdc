// ModelConfig: everything the forward pass needs from config.json: core's ModelShape, the
// model family (model/family.h: weight names and MoE-block differences), norm epsilon and RoPE.
// Unsupported options are refused by name (hidden_act other than silu, rope_scaling other than
// linear).
#pragma once

#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"
#include "model/family.h"

namespace cdmoe::model {

struct ModelConfig {
  ModelShape shape;
  const Family* family = nullptr;  // a registered static
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  double rope_linear_factor = 1;  // positions are divided by it (rope_scaling linear)
  // The routed experts' checkpoint layout, a fact of the weight files rather than config.json
  // (model/weight_names.h read_checkpoint_config detects it): per-expert tensors (hub
  // checkpoints, transformers 4) or transformers 5's fused "mlp.experts.gate_up_proj" [E, 2I, D]
  // (gate rows then up rows) and "mlp.experts.down_proj" [E, D, I].
  bool fused_experts = false;
};

ModelConfig model_config_from_json(const Json& config, const std::string& where);

}  // namespace cdmoe::model
