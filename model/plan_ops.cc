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

Mlp MoeModel::Impl::fuse(const Moe& M, const LayerPlan& lp, const ResolvedCondense& resolved,
                         std::optional<TensorRole> only) const {
  const std::vector<double>& weights = resolved.weights;
  std::vector<at::Tensor> gates, ups, downs;
  const bool gate = !only || *only == TensorRole::kMlpGate, up = !only || *only == TensorRole::kMlpUp,
             down = !only || *only == TensorRole::kMlpDown;
  if (M.shared.defined()) {
    if (gate) gates.push_back(M.shared.gate);
    if (up) ups.push_back(M.shared.up);
    if (down) downs.push_back(M.shared.down * resolved.shared_weight);
  }
  for (size_t i = 0; i < lp.experts.size(); ++i) {
    if (gate) gates.push_back(M.expert_gate[lp.experts[i]]);
    if (up) ups.push_back(M.expert_up[lp.experts[i]]);
    if (down) downs.push_back(M.expert_down[lp.experts[i]] * weights[i]);
  }
  const int64_t D = config.shape.hidden_size;
  auto joined = [&](const std::vector<at::Tensor>& parts, bool wanted, int64_t dim) {
    if (!wanted) return at::Tensor();
    if (parts.empty()) {  // no shared expert and no kept expert: the block outputs zeros
      return dim == 0 ? at::zeros({0, D}, weight_options()) : at::zeros({D, 0}, weight_options());
    }
    return at::cat(parts, dim);
  };
  return Mlp{joined(gates, gate, 0), joined(ups, up, 0), joined(downs, down, 1)};
}

at::Tensor MoeModel::Impl::condensed_part(int layer, const LayerPlan& lp, TensorRole role) const {
  const ResolvedCondense resolved = resolve_condense(layer, lp);
  auto it = condensed_cache.find(resolved.key);
  const Mlp part = it != condensed_cache.end() ? it->second.mlp : fuse(resident_layer(layer).moe, lp, resolved, role);
  return role == TensorRole::kMlpGate ? part.gate : role == TensorRole::kMlpUp ? part.up : part.down;
}

const Mlp& MoeModel::Impl::condensed(const Moe& M, int layer, const LayerPlan& lp) const {
  const ResolvedCondense resolved = resolve_condense(layer, lp);
  auto it = condensed_cache.find(resolved.key);
  if (it != condensed_cache.end()) {
    it->second.last_use = forward_clock;
    return it->second.mlp;
  }
  Mlp fused = fuse(M, lp, resolved, std::nullopt);
  const int64_t bytes = int64_t(fused.gate.nbytes() + fused.up.nbytes() + fused.down.nbytes());
  evict_condensed_for(bytes);
  condensed_bytes += bytes;
  return condensed_cache.emplace(resolved.key, CachedMlp{std::move(fused), bytes, forward_clock, false}).first->second.mlp;
}

void MoeModel::Impl::evict_condensed_for(int64_t bytes) const {
  while (condensed_bytes + bytes > condensed_cap) {
    auto victim = condensed_cache.end();
    for (auto it = condensed_cache.begin(); it != condensed_cache.end(); ++it) {
      if (it->second.pinned || it->second.last_use >= forward_clock) continue;  // in use
      if (victim == condensed_cache.end() || it->second.last_use < victim->second.last_use) victim = it;
    }
    if (victim == condensed_cache.end()) return;  // everything left is in use: over the cap
    condensed_bytes -= victim->second.bytes;
    ++condensed_evicted;
    condensed_cache.erase(victim);
  }
}

void MoeModel::limit_condensed_cache(int64_t bytes) {
  impl_->condensed_cap = bytes;
  impl_->evict_condensed_for(0);
}

MoeModel::CondensedCacheStats MoeModel::condensed_cache_stats() const {
  return {impl_->condensed_bytes, int64_t(impl_->condensed_cache.size()), impl_->condensed_evicted};
}

MoeModel::CondenseWeights MoeModel::condense_weights(int layer, const LayerPlan& lp) const {
  Impl::ResolvedCondense resolved = impl_->resolve_condense(layer, lp);
  return {resolved.weights, resolved.shared_weight};
}

MoeModel::MoeParts MoeModel::moe_parts(const at::Tensor& hidden, const at::Tensor& mask, int layer) const {
  const Impl& m = *impl_;
  if (layer < 0 || layer >= shape().num_layers || !m.layers[size_t(layer)].is_moe || m.layers[size_t(layer)].dropped || m.layers[size_t(layer)].block_dropped ||
      m.fixed.layers().count(layer)) {
    throw_runtime("moe_parts: layer " + std::to_string(layer) + " is not an original MoE layer");
  }
  Plan attention_only;  // the layer with its MLP dropped: exactly the residual its MLP adds to
  attention_only.set_layer(layer, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  MoeParts parts;
  parts.residual = run_layers(hidden, mask, layer, layer + 1, attention_only);
  const Layer& L = m.resident_layer(layer);
  const Moe& M = L.moe;
  at::Tensor x = m.rms_norm(parts.residual, L.post_norm);
  const int64_t D = x.size(-1);
  at::Tensor flat = x.reshape({-1, D});
  parts.shared = M.shared.defined() ? M.shared(flat).view(x.sizes()) : at::zeros_like(x);
  const int64_t E = M.router.size(0);
  std::vector<int64_t> sizes = {E};
  for (int64_t size : x.sizes()) sizes.push_back(size);
  parts.experts = at::empty(sizes, x.options());
  for (int64_t e = 0; e < E; ++e) {
    parts.experts[e].copy_(Mlp{M.expert_gate[e], M.expert_up[e], M.expert_down[e]}(flat).view(x.sizes()));
  }
  return parts;
}

std::vector<std::pair<std::string, at::Tensor>> MoeModel::condensed_parameters(const Plan& plan) const {
  const Impl& m = *impl_;
  plan.validate(shape(), "plan");
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [layer, lp] : plan.layers()) {
    if (lp.op != LayerOp::kCondense) continue;
    const Mlp& mlp = m.condensed(m.resident_layer(layer).moe, layer, lp);
    m.condensed_cache.at(m.resolve_condense(layer, lp).key).pinned = true;  // a trainer holds it now
    const MlpNames names = layer_names(m.family(), layer).mlp;
    out.emplace_back(names.gate, mlp.gate);
    out.emplace_back(names.up, mlp.up);
    out.emplace_back(names.down, mlp.down);
  }
  return out;
}

void MoeModel::forget_condensed(const Plan& plan) {
  for (const auto& [layer, lp] : plan.layers()) {
    if (lp.op != LayerOp::kCondense) continue;
    auto it = impl_->condensed_cache.find(impl_->resolve_condense(layer, lp).key);
    if (it == impl_->condensed_cache.end()) continue;
    impl_->condensed_bytes -= it->second.bytes;
    impl_->condensed_cache.erase(it);
  }
}

}  // namespace cdmoe::model
