#include "model/stock_export.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/tensor_table.h"
#include "model/family.h"
#include "model/model_config.h"
#include "model/moe_model.h"
#include "model/weight_names.h"

namespace cdmoe::model {
namespace {

constexpr const char* kWayOut = "; export it with --format cdmoe";

// The stock checkpoint's layers, read off the tensor table of the source under the plan (what
// export writes): which source layer each holds, its dense MLP width (0: an MoE layer), and
// the routed experts every MoE layer left keeps.
struct StockLayers {
  std::vector<int> source_layer;
  std::vector<int64_t> dense_width;
  int64_t experts = -1;  // -1: no MoE layer left
  int64_t widest() const { return *std::max_element(dense_width.begin(), dense_width.end()); }
  std::vector<int> mlp_only_layers() const {
    std::vector<int> out;
    for (size_t i = 0; i < dense_width.size(); ++i) {
      if (dense_width[i] > 0) out.push_back(int(i));
    }
    return out;
  }
};

bool stock_family(const std::string& model_type) {
  return model_type == "qwen2_moe" || model_type == "qwen3_moe" || model_type == "deepseek";
}

StockLayers stock_layers(const ModelShape& shape, const Plan& plan) {
  if (!stock_family(shape.model_type)) {
    throw_bad_input("--format transformers: a " + shape.model_type + " config has no per-layer dense MLP, so no stock class "
                    "holds a condensed layer (stock exports: qwen2_moe, qwen3_moe, deepseek as qwen2_moe)" + kWayOut);
  }
  std::map<int, std::vector<TensorEntry>> by_layer;
  for (TensorEntry& entry : model_tensors(shape, plan, ExpertLayout::kPerExpert)) {
    if (entry.layer >= 0) by_layer[entry.layer].push_back(std::move(entry));
  }
  StockLayers out;
  int experts_layer = -1;
  for (const auto& [layer, entries] : by_layer) {
    int64_t width = 0, experts = -1;
    for (const TensorEntry& e : entries) {
      if (e.role == TensorRole::kMlpGate) width = e.shape[0];
      if (e.role == TensorRole::kRouter) experts = e.shape[0];
    }
    const std::string where = "--format transformers: plan layer \"" + std::to_string(layer) + "\" ";
    if (width == 0 && experts < 0) {
      throw_bad_input(where + "drops its feed-forward block and keeps its attention, and every decoder layer of a stock "
                      "transformers MoE class has an MLP (drop_block removes the whole layer)" + kWayOut);
    }
    if (experts >= 0 && out.experts >= 0 && experts != out.experts) {
      throw_bad_input(where + "keeps " + std::to_string(experts) + " routed experts and layer " + std::to_string(experts_layer) +
                      " keeps " + std::to_string(out.experts) + ": a stock config has one num_experts for every MoE layer" +
                      kWayOut);
    }
    if (experts >= 0) out.experts = experts, experts_layer = layer;
    out.source_layer.push_back(layer);
    out.dense_width.push_back(width);
  }
  if (out.source_layer.empty()) throw_bad_input("--format transformers: the plan drops every layer");
  return out;
}

// A per-layer list of the source config (e.g. layer_types) keeping the stock layers' entries.
Json reindexed(const Json& per_layer, const StockLayers& layers) {
  Json out = Json::array();
  for (int layer : layers.source_layer) out.push_back(per_layer.at(size_t(layer)));
  return out;
}

Json deepseek_as_qwen2_moe(const Json& source, const ModelConfig& cfg, const StockLayers& layers) {
  const ModelShape& s = cfg.shape;
  auto refuse = [](const std::string& why) { throw_bad_input("--format transformers: this deepseek model " + why + kWayOut); };
  if (s.attention_qkv_bias || s.attention_output_bias) refuse("has attention biases (attention_bias), and qwen2_moe's o_proj has none");
  if (s.shared_intermediate_size == 0) refuse("has no shared experts (n_shared_experts), which qwen2_moe's shared expert needs");
  if (cfg.yarn.on) refuse("uses yarn rope scaling");
  Json c = {{"architectures", {"Qwen2MoeForCausalLM"}},
            {"model_type", "qwen2_moe"},
            {"vocab_size", s.vocab_size},
            {"hidden_size", s.hidden_size},
            {"num_hidden_layers", int64_t(layers.source_layer.size())},
            {"num_attention_heads", s.num_attention_heads},
            {"num_key_value_heads", s.num_key_value_heads},
            {"hidden_act", "silu"},
            {"max_position_embeddings", s.max_position_embeddings},
            {"initializer_range", source.value("initializer_range", 0.02)},
            {"rms_norm_eps", cfg.rms_norm_eps},
            {"use_cache", true},
            {"tie_word_embeddings", s.tie_word_embeddings},
            {"rope_theta", cfg.rope_theta},
            {"use_sliding_window", false},
            {"max_window_layers", int64_t(layers.source_layer.size())},
            {"attention_dropout", 0.0},
            {"decoder_sparse_step", 1},
            {"moe_intermediate_size", s.expert_intermediate_size},
            {"shared_expert_intermediate_size", s.shared_intermediate_size},
            {"num_experts_per_tok", s.experts_per_token},
            {"num_experts", layers.experts >= 0 ? layers.experts : s.num_routed_experts},
            // DeepSeekMoE normalises the top-k only when k > 1; qwen2_moe whenever asked.
            {"norm_topk_prob", s.norm_topk_prob && s.experts_per_token > 1},
            {"output_router_logits", false},
            {"router_aux_loss_coef", source.value("aux_loss_alpha", 0.001)}};
  for (const char* key : {"rope_scaling", "bos_token_id", "eos_token_id", "pad_token_id"}) {
    if (source.contains(key)) c[key] = source[key];
  }
  return c;
}

// The source tensor a stock tensor comes from: (role, source layer, expert).
using SourceKey = std::tuple<TensorRole, int, int64_t>;

bool is_dense_mlp(TensorRole role) {
  return role == TensorRole::kMlpGate || role == TensorRole::kMlpUp || role == TensorRole::kMlpDown;
}

}  // namespace

Json stock_config(const Json& source, const Plan& plan) {
  const ModelConfig cfg = model_config_from_json(source, "config.json");
  const StockLayers layers = stock_layers(cfg.shape, plan);
  const int64_t stock_count = int64_t(layers.source_layer.size());
  Json c;
  if (cfg.shape.model_type == "deepseek") {
    c = deepseek_as_qwen2_moe(source, cfg, layers);
  } else {
    c = source;
    c.erase("cdmoe");
    c.erase("quantization_config");
    c["num_hidden_layers"] = stock_count;
    if (layers.experts >= 0) c["num_experts"] = layers.experts;
    if (c.contains("layer_types") && c["layer_types"].is_array()) c["layer_types"] = reindexed(c["layer_types"], layers);
    if (c.contains("max_window_layers") && c["max_window_layers"].is_number_integer()) {
      const int64_t bound = c["max_window_layers"].get<int64_t>();
      c["max_window_layers"] = std::count_if(layers.source_layer.begin(), layers.source_layer.end(),
                                             [&](int layer) { return layer < bound; });
    }
  }
  c["decoder_sparse_step"] = 1;
  c["mlp_only_layers"] = layers.mlp_only_layers();
  if (!layers.mlp_only_layers().empty()) c["intermediate_size"] = layers.widest();
  else if (!c.contains("intermediate_size")) c["intermediate_size"] = cfg.shape.dense_intermediate_size;
  return c;
}

std::vector<LazyTensor> stock_tensors(const MoeModel& model, const Plan& plan, const Json& config) {
  const ModelShape& source = model.shape();
  const bool from_deepseek = source.model_type == "deepseek";
  const StockLayers layers = stock_layers(source, plan);
  const ModelConfig stock = model_config_from_json(config, "stock config.json");

  std::map<SourceKey, MoeModel::Materialised> by_key;
  for (MoeModel::Materialised& m : model.materialise_layout(plan)) {
    SourceKey key{m.entry.role, m.entry.layer, m.expert};
    by_key.emplace(key, std::move(m));
  }
  std::set<SourceKey> used;
  const at::TensorOptions options = at::TensorOptions().dtype(model.dtype()).device(model.device());
  std::vector<LazyTensor> out;
  for_each_named_tensor(*stock.family, model_tensors(stock.shape, Plan()), ExpertLayout::kPerExpert, Plan(),
                        [&](const TensorEntry& entry, int64_t expert, const std::string& name) {
    const int source_layer = entry.layer >= 0 ? layers.source_layer.at(size_t(entry.layer)) : -1;
    const SourceKey key{entry.role, source_layer, expert};
    auto found = by_key.find(key);
    std::function<at::Tensor()> compute;
    std::vector<int64_t> from_shape;
    if (found != by_key.end()) {
      used.insert(key);
      const MoeModel::Materialised& from = found->second;  // copied into compute: by_key goes at return
      from_shape = from.entry.shape;
      // Zero-padded to the common width: rows of gate and up, columns of down.
      const int64_t pad_dim = entry.role == TensorRole::kMlpDown ? 1 : 0;
      const bool pad = is_dense_mlp(entry.role) && from_shape != entry.shape;
      // sigmoid(0) = 1/2 halves the shared expert qwen2_moe adds; DeepSeekMoE adds it whole.
      const bool twice = from_deepseek && entry.role == TensorRole::kSharedDown;
      if (pad) from_shape[size_t(pad_dim)] = entry.shape[size_t(pad_dim)];
      compute = [&model, &plan, what = from, shape = entry.shape, pad, pad_dim, twice] {
        at::Tensor tensor = model.materialised_tensor(plan, what);
        if (pad && shape[size_t(pad_dim)] > tensor.size(pad_dim)) {
          std::vector<int64_t> pad_shape = tensor.sizes().vec();
          pad_shape[size_t(pad_dim)] = shape[size_t(pad_dim)] - tensor.size(pad_dim);
          tensor = at::cat({tensor, at::zeros(pad_shape, tensor.options())}, pad_dim);
        }
        return twice ? tensor * 2 : tensor;
      };
    } else if (from_deepseek && (entry.role == TensorRole::kQBias || entry.role == TensorRole::kKBias ||
                                 entry.role == TensorRole::kVBias || entry.role == TensorRole::kSharedExpertGate)) {
      from_shape = entry.shape;
      compute = [options, shape = entry.shape] { return at::zeros(shape, options); };
    }
    if (!compute || from_shape != entry.shape) {
      throw_runtime("stock export: tensor '" + name + "' is " + (compute ? shape_text(from_shape) : "missing") +
                    ", the stock class makes it " + shape_text(entry.shape));
    }
    out.push_back({name, entry.shape, std::move(compute)});
  });
  for (const auto& [key, from] : by_key) {
    if (!used.count(key)) throw_runtime("stock export: source tensor '" + from.name + "' has no place in the stock checkpoint");
  }
  return out;
}

}  // namespace cdmoe::model
