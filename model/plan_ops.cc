// Plan operations on an MoE block that need more than skipping it: the condensed layer
// (ARCHITECTURE.md §2, §7) as ONE dense SwiGLU MLP, built once per (layer, experts, weights)
// and kept in the model's condensed-layer cache. Prune runs through the router in moe_forward.cc.
#include <ATen/ATen.h>

#include "core/error.h"
#include "model/moe_model_impl.h"
#include "model/weight_names.h"

namespace cdmoe::model {

// The plan's condense op with its implicit weights taken from the router statistics; `key` is its
// canonical text, the condensed-layer cache's key.
MoeModel::Impl::ResolvedCondense MoeModel::Impl::resolve_condense(int layer, const LayerPlan& lp) const {
  std::vector<double> weights = lp.weights;
  if (weights.empty()) {
    for (int e : lp.experts) weights.push_back(stats.average_weight(layer, e));
  }
  double shared_weight = lp.shared_weight ? *lp.shared_weight
                         : family().shared_expert_gate ? stats.average_shared_gate(layer) : 1.0;
  bool needs_stats = (lp.weights.empty() && !lp.experts.empty()) ||
                     (!lp.shared_weight && family().shared_expert_gate && lp.op == LayerOp::kCondense);
  if (needs_stats && !stats.layers.count(layer)) {
    throw_bad_input("plan layer \"" + std::to_string(layer) + "\": condense without " +
                    (lp.weights.empty() && !lp.experts.empty() ? "weights" : "shared_weight") +
                    " needs router statistics measured on calibration data");
  }
  Plan key_plan;
  key_plan.set_layer(layer, LayerPlan{LayerOp::kCondense, lp.experts, weights, shared_weight});
  return {key_plan.canonical(), weights, shared_weight};
}

// The condensed layer as ONE dense SwiGLU MLP: shared expert(s) and the kept experts side by
// side, each kept expert's weight (and the shared weight) folded into its down columns.

const Mlp& MoeModel::Impl::condensed(const Moe& M, int layer, const LayerPlan& lp) const {
  const ResolvedCondense resolved = resolve_condense(layer, lp);
  auto it = condensed_cache.find(resolved.key);
  if (it != condensed_cache.end()) return it->second;
  const std::vector<double>& weights = resolved.weights;
  const double shared_weight = resolved.shared_weight;
  std::vector<at::Tensor> gates, ups, downs;
  if (M.shared.defined()) {
    gates.push_back(M.shared.gate);
    ups.push_back(M.shared.up);
    downs.push_back(M.shared.down * shared_weight);
  }
  for (size_t i = 0; i < lp.experts.size(); ++i) {
    gates.push_back(M.expert_gate[lp.experts[i]]);
    ups.push_back(M.expert_up[lp.experts[i]]);
    downs.push_back(M.expert_down[lp.experts[i]] * weights[i]);
  }
  Mlp fused;
  if (gates.empty()) {  // no shared expert and no kept expert: the block outputs zeros
    const int64_t D = config.shape.hidden_size;
    fused = Mlp{at::zeros({0, D}, weight_options()), at::zeros({0, D}, weight_options()), at::zeros({D, 0}, weight_options())};
  } else {
    fused = Mlp{at::cat(gates, 0), at::cat(ups, 0), at::cat(downs, 1)};
  }
  return condensed_cache.emplace(resolved.key, std::move(fused)).first->second;
}

std::vector<std::pair<std::string, at::Tensor>> MoeModel::condensed_parameters(const Plan& plan) const {
  const Impl& m = *impl_;
  plan.validate(shape(), "plan");
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [layer, lp] : plan.layers()) {
    if (lp.op != LayerOp::kCondense) continue;
    const Mlp& mlp = m.condensed(m.layers[size_t(layer)].moe, layer, lp);
    const MlpNames names = layer_names(m.family(), layer).mlp;
    out.emplace_back(names.gate, mlp.gate);
    out.emplace_back(names.up, mlp.up);
    out.emplace_back(names.down, mlp.down);
  }
  return out;
}

void MoeModel::forget_condensed(const Plan& plan) {
  for (const auto& [layer, lp] : plan.layers()) {
    if (lp.op == LayerOp::kCondense) impl_->condensed_cache.erase(impl_->resolve_condense(layer, lp).key);
  }
}

}  // namespace cdmoe::model
