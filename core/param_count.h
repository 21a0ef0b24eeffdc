// Analytic parameter count of a model under a plan: the elements of the tensors a materialised
// model holds, summed over the tensor table (core/tensor_table.h), so it is exactly what load
// allocates and export writes (tests check Σ numel written against it for every fixture).
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

// Parameters of the plan divided by the original model's: the paper's "memory" figure.
double parameter_ratio(const ModelShape& shape, const Plan& plan);

// Bytes per element of a dtype name as torch/safetensors spell it ("float32", "bfloat16", "F16", ...).
int64_t bytes_per_element(const std::string& dtype);

}  // namespace cdmoe
