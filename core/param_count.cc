#include "core/param_count.h"

#include <numeric>

#include "core/error.h"
#include "core/model_shape.h"
#include "core/plan.h"
#include "core/tensor_table.h"

namespace cdmoe {

int64_t ParameterCount::total() const {
  return embedding + final_norm + lm_head + std::accumulate(per_layer.begin(), per_layer.end(), int64_t{0});
}

ParameterCount count_parameters(const ModelShape& shape, const Plan& plan) {
  ParameterCount count;
  count.per_layer.assign(size_t(shape.num_layers), 0);
  for (const TensorEntry& entry : model_tensors(shape, plan)) {
    switch (entry.role) {
      case TensorRole::kEmbedding: count.embedding += entry.numel(); break;
      case TensorRole::kFinalNorm: count.final_norm += entry.numel(); break;
      case TensorRole::kLmHead: count.lm_head += entry.numel(); break;
      default: count.per_layer[size_t(entry.layer)] += entry.numel();
    }
  }
  return count;
}

double parameter_ratio(const ModelShape& shape, const Plan& plan) {
  return double(count_parameters(shape, plan).total()) / double(count_parameters(shape, Plan()).total());
}

int64_t bytes_per_element(const std::string& dtype) {
  if (dtype == "float32" || dtype == "F32" || dtype == "fp32") return 4;
  if (dtype == "bfloat16" || dtype == "BF16" || dtype == "bf16") return 2;
  if (dtype == "float16" || dtype == "F16" || dtype == "fp16") return 2;
  if (dtype == "float64" || dtype == "F64") return 8;
  throw_bad_input("dtype \"" + dtype + "\" is not one of float32, bfloat16, float16, float64");
}

}  // namespace cdmoe
