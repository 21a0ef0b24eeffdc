// The tensors of a model materialised under a plan: the tensor table (core/tensor_table.h) of
// the exported checkpoint's plan, named by the family as load reads them: what cdmoe-export
// writes, laid out first and computed one at a time (a writer streams them). Each tensor is
// checked against the table's shape.
#include <ATen/ATen.h>

#include "core/error.h"
#include "model/moe_model_impl.h"
#include "model/weight_names.h"

namespace cdmoe::model {

std::vector<std::pair<std::string, at::Tensor>> MoeModel::materialise(const Plan& plan) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (Materialised& m : materialise_entries(plan)) out.emplace_back(std::move(m.name), std::move(m.tensor));
  return out;
}

namespace {

const at::Tensor& checked(const at::Tensor& tensor, const MoeModel::Materialised& what) {
  if (!tensor.defined() || tensor.sizes().vec() != what.entry.shape) {
    throw_runtime("materialise: tensor '" + what.name + "' is " + (tensor.defined() ? shape_text(tensor.sizes().vec()) : "missing") +
                  ", the tensor table says " + shape_text(what.entry.shape));
  }
  return tensor;
}

}  // namespace

std::vector<MoeModel::Materialised> MoeModel::materialise_entries(const Plan& plan) const {
  std::vector<Materialised> out = materialise_layout(plan);
  for (Materialised& m : out) m.tensor = materialised_tensor(plan, m);
  return out;
}

std::vector<MoeModel::Materialised> MoeModel::materialise_layout(const Plan& plan) const {
  const Impl& m = *impl_;
  const ModelShape& s = shape();
  plan.validate(s, "plan");
  Plan written = m.fixed;  // the exported checkpoint's plan: what this model has fixed, and `plan`
  for (const auto& [layer, lp] : plan.layers()) {
    if (m.fixed.layers().count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": this exported checkpoint has it fixed already");
    }
    if (lp.op == LayerOp::kPrune && s.router != RouterKind::kSoftmax && s.n_group > 1) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": a pruned layer of a group-limited router (n_group " +
                      std::to_string(s.n_group) + ") cannot be exported: its renumbered experts would lose their groups");
    }
    if (lp.op == LayerOp::kCondense) (void)m.resolve_condense(layer, lp);  // its weights are known (bad input if not)
    written.set_layer(layer, lp);
  }
  std::vector<Materialised> out;
  for_each_named_tensor(m.family(), model_tensors(s, written), ExpertLayout::kPerExpert, written,
                        [&](const TensorEntry& entry, int64_t expert, const std::string& name) {
    out.push_back({entry, expert, name, at::Tensor()});
  });
  return out;
}

at::Tensor MoeModel::materialised_tensor(const Plan& plan, const Materialised& what) const {
  const Impl& m = *impl_;
  const TensorEntry& entry = what.entry;
  at::Tensor tensor;
  if (entry.role == TensorRole::kEmbedding) {
    tensor = m.embed_tokens;
  } else if (entry.role == TensorRole::kFinalNorm) {
    tensor = m.final_norm;
  } else if (entry.role == TensorRole::kLmHead) {
    tensor = m.lm_head;
  } else {
    auto it = plan.layers().find(entry.layer);
    const LayerPlan* lp = it == plan.layers().end() ? nullptr : &it->second;
    // A layer the plan leaves alone streams tensor by tensor: an exporter holds one expert, not
    // the layer.
    if (m.reads_tensor_alone(entry.layer, lp)) return checked(m.read_tensor(what.name, entry), what);
    const bool condensing = lp && lp->op == LayerOp::kCondense, pruning = lp && lp->op == LayerOp::kPrune;
    const bool dense_mlp = entry.role == TensorRole::kMlpGate || entry.role == TensorRole::kMlpUp || entry.role == TensorRole::kMlpDown;
    // A fine-tune's condensed MLP is in the cache already: its layer need not be read.
    if (condensing && dense_mlp) return checked(m.condensed_part(entry.layer, *lp, entry.role), what);
    const Layer& L = m.resident_layer(entry.layer);
    // A pruned layer's experts are renumbered 0..r-1: written expert i is held expert kept[i].
    auto held = [&](int64_t i) { return pruning ? int64_t(lp->experts[size_t(i)]) : i; };
    switch (entry.role) {
      case TensorRole::kExpertGate: tensor = L.moe.expert_gate[held(what.expert)]; break;
      case TensorRole::kExpertUp: tensor = L.moe.expert_up[held(what.expert)]; break;
      case TensorRole::kExpertDown: tensor = L.moe.expert_down[held(what.expert)]; break;
      case TensorRole::kRouter:
      case TensorRole::kRouterBias: {
        tensor = *tensor_slot(L, entry.role);
        if (pruning) {
          std::vector<int64_t> kept(lp->experts.begin(), lp->experts.end());
          tensor = tensor.index_select(0, at::tensor(kept, at::kLong).to(tensor.device()));
        }
        break;
      }
      default: {
        const at::Tensor* slot = tensor_slot(L, entry.role);
        if (!slot) throw_runtime("tensor '" + what.name + "' has no place in model::Layer");
        tensor = *slot;
      }
    }
  }
  return checked(tensor, what);
}

}  // namespace cdmoe::model
