// The tensors of a model materialised under a plan, named by the family's weight-name table
// (model/weight_names.h) as load reads them: what cdmoe-export writes.
#include <ATen/ATen.h>

#include "core/error.h"
#include "model/moe_model_impl.h"
#include "model/weight_names.h"

namespace cdmoe::model {

std::vector<std::pair<std::string, at::Tensor>> MoeModel::materialise(const Plan& plan) const {
  const Impl& m = *impl_;
  const ModelShape& s = shape();
  plan.validate(s, "plan");
  std::vector<std::pair<std::string, at::Tensor>> out = {{kEmbedTokensName, m.embed_tokens}, {kFinalNormName, m.final_norm}};
  if (!s.tie_word_embeddings) out.emplace_back(kLmHeadName, m.lm_head);
  auto add_mlp = [&](const MlpNames& names, const Mlp& mlp) {
    out.emplace_back(names.gate, mlp.gate);
    out.emplace_back(names.up, mlp.up);
    out.emplace_back(names.down, mlp.down);
  };
  for (int layer = 0; layer < s.num_layers; ++layer) {
    const Layer& L = m.layers[size_t(layer)];
    const LayerNames n = layer_names(m.family(), layer);
    auto it = plan.layers().find(layer);
    const LayerPlan* lp = it == plan.layers().end() ? nullptr : &it->second;
    if (lp && m.fixed.layers().count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": this exported checkpoint has it fixed already");
    }
    if (L.block_dropped || (lp && lp->op == LayerOp::kDropBlock)) continue;
    if (lp && lp->op == LayerOp::kPrune && s.router != RouterKind::kSoftmax && s.n_group > 1) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": a pruned layer of a group-limited router (n_group " +
                      std::to_string(s.n_group) + ") cannot be exported: its renumbered experts would lose their groups");
    }
    out.emplace_back(n.input_norm, L.input_norm);
    for (const auto& [name, tensor] : attention_slots(n, L)) {
      if (tensor->defined()) out.emplace_back(*name, *tensor);
    }
    if (L.dropped || (lp && lp->op == LayerOp::kDrop)) continue;
    out.emplace_back(n.post_norm, L.post_norm);
    if (!L.is_moe) {
      add_mlp(n.mlp, L.dense);
      continue;
    }
    if (lp && lp->op == LayerOp::kCondense) {
      add_mlp(n.mlp, m.condensed(L.moe, layer, *lp));
      continue;
    }
    const Moe& M = L.moe;
    std::vector<int64_t> kept;
    if (lp) kept.assign(lp->experts.begin(), lp->experts.end());
    else for (int64_t e = 0; e < M.router.size(0); ++e) kept.push_back(e);
    const at::Tensor kept_rows = at::tensor(kept, at::kLong).to(m.device);
    out.emplace_back(n.router, M.router.index_select(0, kept_rows));
    if (M.router_bias.defined()) out.emplace_back(n.router_bias, M.router_bias.index_select(0, kept_rows));
    for (size_t i = 0; i < kept.size(); ++i) {  // renumbered 0..r-1
      add_mlp(n.expert(int64_t(i)), Mlp{M.expert_gate[kept[i]], M.expert_up[kept[i]], M.expert_down[kept[i]]});
    }
    if (M.shared.defined()) add_mlp(n.shared, M.shared);
    if (M.shared_gate.defined()) out.emplace_back(n.shared_gate, M.shared_gate);
  }
  return out;
}

}  // namespace cdmoe::model
