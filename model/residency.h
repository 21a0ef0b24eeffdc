// Where a model's decoder layers live, and choosing it under a memory limit (issue #31; the
// compute mains' --residency and --device-memory-mb). Torch-free: decided from the tensor table
// before any weight is read.
//   kFull: every layer is read at load and held.
//   kLayers: the embedding, final norm and head are read at load and held; a decoder layer is
//     read from the checkpoint's mapped files when it is first used and held while it is among
//     the `resident_layers` most recently used (MoeModel::load).
// Sizes are of the weights in the compute dtype (activations, the layer cache and the condensed
// MLPs come on top).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor_table.h"

namespace cdmoe::model {

enum class Residency { kFull, kLayers };

struct ResidencyChoice {
  Residency residency = Residency::kFull;
  int resident_layers = 1;        // kLayers: decoder layers held at once
  int64_t model_bytes = 0;        // every tensor of the table
  int64_t global_bytes = 0;       // the embedding, final norm and head
  int64_t largest_layer_bytes = 0;
  int largest_layer = -1;
};

// `mode` is "full", "layers" or "auto" (layers when the model does not fit `limit_bytes`);
// `limit_bytes` 0 means no limit. kLayers holds as many layers as fit beside the global
// tensors (at least one). Bad input naming `option` (the limit's) when the limit cannot hold
// what the mode needs: the model (full), or the global tensors and the largest layer (layers),
// saying the sizes and the least that works.
ResidencyChoice choose_residency(const std::vector<TensorEntry>& table, int64_t element_bytes, const std::string& mode,
                                 int64_t limit_bytes, const std::string& option);

}  // namespace cdmoe::model
