// The reference implementation's (github.com/duterscmy/CD-MoE) published search artifacts as
// plans, so a sweep can evaluate the reference's exact choices next to ours (--strategy plans).
// Torch-free. Its files index MoE layers 0..M-1 (MoE-relative: for DeepSeekMoE, decoder layer
// = index + 1); they map through ModelShape::moe_layers() here.
//   dynamic_weight.json      {"L-E": [sum, count, mean], ...}: the mean routing weight of expert E
//                             of MoE layer L, which the reference's condensed layer uses
//   greedy expert file       {"L": [e1, e2, ...], ...}: each layer's experts in greedy order
//                             (greedy_search_expert.py's output); the first k are kept
//   layer order              [L1, L2, ...]: the greedy layer order (greedy_search_layer.py's
//                             output, e.g. layer_idx_order.e6.json); point n condenses the first n
// Bad input names the file and the entry.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/model_shape.h"
#include "core/plan.h"

namespace cdmoe::search {

struct ReferenceArtifacts {
  std::vector<int> layer_order;                        // MoE-relative, greedy order
  std::map<int, std::vector<int>> expert_order;        // MoE-relative layer -> experts, greedy order
  std::map<std::pair<int, int>, double> mean_weights;  // (MoE-relative layer, expert) -> mean weight
  std::string layer_order_file = "layer order", experts_file = "expert file", weights_file = "dynamic weights";  // for errors
};

std::vector<int> read_reference_layer_order(const std::string& path);
std::map<int, std::vector<int>> read_reference_experts(const std::string& path);
std::map<std::pair<int, int>, double> read_reference_weights(const std::string& path);

struct ReferencePlan {
  std::string method;  // e.g. reference_sr_k6, reference_s
  std::string budget;  // layers:N
  Plan plan;
};

// One plan per layer count in `layer_counts` (each 1..layer_order.size()): the first n layers of
// the order condensed to shared + the first k experts of each (weights: the reference's means;
// k = 0 is shared-only and needs no expert file or weights). Errors name the artifact's file.
std::vector<ReferencePlan> reference_plans(const ModelShape& shape, const ReferenceArtifacts& artifacts, int k,
                                           const std::vector<int>& layer_counts, const std::string& method);

}  // namespace cdmoe::search
