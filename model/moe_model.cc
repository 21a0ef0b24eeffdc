// MoeModel's accessors, compute dtypes and router statistics; the rest lives in the files
// model/moe_model_impl.h lists.
#include "model/moe_model.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "model/moe_model_impl.h"
#include "model/weight_names.h"

namespace cdmoe::model {

double RouterStats::average_weight(int layer, int expert) const {
  auto it = layers.find(layer);
  if (it == layers.end() || it->second.tokens[size_t(expert)] == 0) return 0;
  return it->second.weight_sum[size_t(expert)] / it->second.tokens[size_t(expert)];
}

double RouterStats::average_shared_gate(int layer) const {
  auto it = layers.find(layer);
  if (it == layers.end() || it->second.token_count == 0) return 1;
  return it->second.shared_gate_sum / it->second.token_count;
}

std::vector<ExpertRouting> RouterStats::to_rows() const {
  std::vector<ExpertRouting> rows;
  for (const auto& [layer, usage] : layers) {
    for (size_t e = 0; e < usage.tokens.size(); ++e) rows.push_back({layer, int(e), usage.tokens[e], average_weight(layer, int(e))});
  }
  for (const auto& [layer, usage] : layers) {
    if (usage.token_count > 0) rows.push_back({layer, -1, usage.token_count, average_shared_gate(layer)});
  }
  return rows;
}

RouterStats RouterStats::from_rows(const std::vector<ExpertRouting>& rows, const ModelShape& shape, const std::string& where) {
  RouterStats stats;
  for (const ExpertRouting& row : rows) {
    if (!shape.is_moe_layer(row.layer) || row.expert < -1 || row.expert >= shape.num_routed_experts) {
      throw_bad_input(where + ": router statistics for layer " + std::to_string(row.layer) + " expert " +
                      std::to_string(row.expert) + ", which this model does not have");
    }
    Layer& entry = stats.layers[row.layer];
    if (entry.tokens.empty()) entry.tokens.assign(size_t(shape.num_routed_experts), 0), entry.weight_sum.assign(size_t(shape.num_routed_experts), 0);
    if (row.expert < 0) {
      entry.token_count = row.tokens;
      entry.shared_gate_sum = row.average_weight * row.tokens;
    } else {
      entry.tokens[size_t(row.expert)] = row.tokens;
      entry.weight_sum[size_t(row.expert)] = row.average_weight * row.tokens;
    }
  }
  return stats;
}

MoeModel::MoeModel() : impl_(std::make_unique<Impl>()) {}
MoeModel::~MoeModel() = default;

const ModelConfig& MoeModel::config() const { return impl_->config; }
const at::Device& MoeModel::device() const { return impl_->device; }
at::ScalarType MoeModel::dtype() const { return impl_->dtype; }

at::ScalarType compute_dtype_named(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  throw_bad_input("--dtype \"" + name + "\" is not one of float32, bfloat16");
}

std::string compute_dtype_name(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bfloat16" : "float32"; }

const Plan& MoeModel::fixed_plan() const { return impl_->fixed; }

void MoeModel::collect_router_stats(bool on) { impl_->collecting = on; }
const RouterStats& MoeModel::router_stats() const { return impl_->stats; }
void MoeModel::set_router_stats(RouterStats stats) {
  impl_->stats = std::move(stats);
  impl_->condensed_cache.clear();  // defaults of cached condensed layers may have changed
  impl_->condensed_bytes = 0;
}

void MoeModel::collect_balance_loss(bool on) {
  impl_->balancing = on;
  impl_->balance_loss = at::Tensor();
}

at::Tensor MoeModel::take_balance_loss() {
  at::Tensor loss = impl_->balance_loss.defined() ? impl_->balance_loss : at::zeros({}, at::TensorOptions().device(impl_->device));
  impl_->balance_loss = at::Tensor();
  return loss;
}

namespace {

// Layer `layer`'s tensors as held, by their Hugging Face names (stacked routed experts as one
// tensor per kind), appended to `out`.
void add_layer_parameters(const Family& family, const ModelShape& shape, int layer, const Layer& L,
                          std::vector<std::pair<std::string, at::Tensor>>& out) {
  auto add = [&](const std::string& name, const at::Tensor& tensor) {
    if (tensor.defined()) out.emplace_back(name, tensor);
  };
  auto add_mlp = [&](const MlpNames& names, const Mlp& mlp) {
    add(names.gate, mlp.gate);
    add(names.up, mlp.up);
    add(names.down, mlp.down);
  };
  const LayerNames n = layer_names(family, layer);
  add(n.input_norm, L.input_norm);
  add(n.post_norm, L.post_norm);
  for (const TensorEntry& entry : attention_tensors(shape, layer)) add(tensor_name(n, entry, -1), *tensor_slot(L, entry.role));
  add_mlp(n.mlp, L.dense);
  if (!L.is_moe) return;
  add(n.router, L.moe.router);  // not e_score_correction_bias: a buffer in transformers, never trained
  add_mlp(mlp_names(n.experts_prefix), Mlp{L.moe.expert_gate, L.moe.expert_up, L.moe.expert_down});
  add_mlp(n.shared, L.moe.shared);
  add(n.shared_gate, L.moe.shared_gate);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> MoeModel::parameters() const {
  const Impl& m = *impl_;
  std::vector<std::pair<std::string, at::Tensor>> out = {{kEmbedTokensName, m.embed_tokens}, {kFinalNormName, m.final_norm}};
  if (!shape().tie_word_embeddings) out.emplace_back(kLmHeadName, m.lm_head);
  for (int layer = 0; layer < shape().num_layers; ++layer) {
    add_layer_parameters(m.family(), shape(), layer, m.pinned_layer(layer), out);  // the handles share its tensors
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> MoeModel::moe_block_parameters(int layer) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (layer < 0 || layer >= shape().num_layers || !impl_->layers[size_t(layer)].is_moe) return out;
  std::vector<std::pair<std::string, at::Tensor>> all;
  add_layer_parameters(impl_->family(), shape(), layer, impl_->pinned_layer(layer), all);
  const std::string block = layer_names(impl_->family(), layer).block;
  for (auto& named : all) {
    if (named.first.rfind(block, 0) == 0) out.push_back(std::move(named));
  }
  return out;
}

}  // namespace cdmoe::model
