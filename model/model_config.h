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
};

ModelConfig model_config_from_json(const Json& config, const std::string& where);

}  // namespace cdmoe::model
