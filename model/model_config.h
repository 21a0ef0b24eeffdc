// ModelConfig: everything the forward pass needs from config.json: core's ModelShape, the
// model family (model/family.h: weight names and MoE-block differences), norm epsilon and RoPE.
// Unsupported options are refused by name (hidden_act other than silu, rope_scaling other than
// linear).
#pragma once

#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"
#include "core/tensor_table.h"
#include "model/family.h"

namespace cdmoe::model {

struct ModelConfig {
  ModelShape shape;
  const Family* family = nullptr;  // a registered static
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  double rope_linear_factor = 1;  // positions are divided by it (rope_scaling linear)
  // rope_scaling yarn, as transformers' _compute_yarn_parameters reads it.
  struct Yarn {
    bool on = false;
    double factor = 1;             // the config's factor (DeepSeek's softmax mscale uses it)
    double frequency_factor = 1;   // what the low frequencies are divided by: max_position_embeddings /
                                   // original_max_position_embeddings when given, else factor
    double original_max_positions = 0;
    double beta_fast = 32, beta_slow = 1;
    bool truncate = true;
    double attention_factor = 1;   // cos and sin are multiplied by it
    double mscale_all_dim = 0;     // latent attention: softmax scale *= mscale(factor, mscale_all_dim)^2
    double softmax_scale() const;  // that multiplier (1 without yarn or mscale_all_dim)
  } yarn;
  // The routed experts' checkpoint layout, a fact of the weight files rather than config.json
  // (model/weight_names.h read_checkpoint_config detects it): per-expert tensors (hub
  // checkpoints, transformers 4) or transformers 5's fused "mlp.experts.gate_up_proj" [E, 2I, D]
  // (gate rows then up rows) and "mlp.experts.down_proj" [E, D, I].
  ExpertLayout expert_layout = ExpertLayout::kPerExpert;
  // quantization_config {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [r, c]}
  // (DeepSeek-V3/R1, Kimi-K2): which weights are F8_E4M3 is a fact of the files; each has a
  // `<name>_scale_inv` of one multiplier per r × c block (model/fp8.h). 0 × 0: not quantised.
  struct Fp8Blocks {
    int64_t rows = 0, cols = 0;
    bool on() const { return rows > 0; }
  } fp8;
};

ModelConfig model_config_from_json(const Json& config, const std::string& where);

}  // namespace cdmoe::model
