// Analytic parameter count of a model under a plan: exactly the elements of the tensors a
// materialised model holds (model/ must agree; tests check it once the model exists).
//   original MoE layer: router [E, D] + E experts (3·D·Ie each) + shared MLP (3·D·Is)
//                       (+ qwen2_moe shared_expert_gate [1, D])
//   condense, k experts: one dense SwiGLU MLP of inner size Is + k·Ie (router and gate gone)
//   prune, r experts:    router [r, D] + r experts + shared MLP (+ gate)
//   drop:                the MLP block and its post_attention_layernorm are gone
// Every layer also holds attention (q, k, v, o and their biases) and input_layernorm.
// Bytes = parameters × bytes per element of the compute dtype (fp32 on CPU, bf16 on CUDA).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cdmoe {

struct ModelShape;
class Plan;

struct ParameterCount {
  int64_t embedding = 0;
  int64_t final_norm = 0;
  int64_t lm_head = 0;  // 0 when tied to the embedding
  std::vector<int64_t> per_layer;

  int64_t total() const;
};

// The plan must be valid for the shape (Plan::validate); counts elements, not bytes.
ParameterCount count_parameters(const ModelShape& shape, const Plan& plan);
// One decoder layer's attention weights (projections, biases, q/k or latent norms).
int64_t attention_parameters(const ModelShape& shape);

// Parameters of the plan divided by the original model's: the paper's "memory" figure.
double parameter_ratio(const ModelShape& shape, const Plan& plan);

// Bytes per element of a dtype name as torch/safetensors spell it ("float32", "bfloat16", "F16", ...).
int64_t bytes_per_element(const std::string& dtype);

}  // namespace cdmoe
