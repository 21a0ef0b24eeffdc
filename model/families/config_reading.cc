#include "model/families/config_reading.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::model {
namespace {

// Sizes past this are no model's (the largest real vocabularies and widths are ~2^18); refusing
// them up front keeps a corrupt config.json from sizing an allocation or a loop.
constexpr int64_t kMaxSize = int64_t(1) << 24;

int64_t bounded(int64_t value, const std::string& key, const std::string& where) {
  if (value > kMaxSize) {
    throw_bad_input(where + ": field '" + key + "' is " + std::to_string(value) + ", past any real model (at most " +
                    std::to_string(kMaxSize) + ")");
  }
  return value;
}

}  // namespace

int64_t require_positive(const Json& config, const std::string& key, const std::string& where) {
  int64_t value = require_int(config, key, where);
  if (value <= 0) throw_bad_input(where + ": field '" + key + "' must be positive, got " + std::to_string(value));
  return bounded(value, key, where);
}

int64_t positive_or(const Json& config, const std::string& key, int64_t fallback, const std::string& where) {
  int64_t value = int_or(config, key, fallback, where);
  if (value <= 0) throw_bad_input(where + ": field '" + key + "' must be positive, got " + std::to_string(value));
  return bounded(value, key, where);
}

int64_t non_negative_or(const Json& config, const std::string& key, int64_t fallback, const std::string& where) {
  int64_t value = int_or(config, key, fallback, where);
  if (value < 0) throw_bad_input(where + ": field '" + key + "' must not be negative, got " + std::to_string(value));
  return bounded(value, key, where);
}

void read_common_shape(const Json& config, const std::string& where, ModelShape& shape, bool explicit_head_dim) {
  shape.num_layers = require_positive(config, "num_hidden_layers", where);
  shape.hidden_size = require_positive(config, "hidden_size", where);
  shape.vocab_size = require_positive(config, "vocab_size", where);
  shape.num_attention_heads = require_positive(config, "num_attention_heads", where);
  shape.num_key_value_heads = positive_or(config, "num_key_value_heads", shape.num_attention_heads, where);
  if (shape.num_attention_heads % shape.num_key_value_heads != 0) {
    throw_bad_input(where + ": num_attention_heads " + std::to_string(shape.num_attention_heads) +
                    " is not divisible by num_key_value_heads " + std::to_string(shape.num_key_value_heads));
  }
  if (explicit_head_dim && config.contains("head_dim") && !config["head_dim"].is_null()) {
    shape.head_dim = require_positive(config, "head_dim", where);
  } else {
    if (shape.hidden_size % shape.num_attention_heads != 0) {
      throw_bad_input(where + ": hidden_size " + std::to_string(shape.hidden_size) +
                      " is not divisible by num_attention_heads " + std::to_string(shape.num_attention_heads));
    }
    shape.head_dim = shape.hidden_size / shape.num_attention_heads;
  }
  if (shape.head_dim % 2 != 0) {  // RoPE rotates halves
    throw_bad_input(where + ": the head size " + std::to_string(shape.head_dim) + " is odd; rotary embeddings need it even");
  }
  shape.torch_dtype = string_or(config, "torch_dtype", "float32", where);
  shape.tie_word_embeddings = bool_or(config, "tie_word_embeddings", false, where);
}

void read_qwen_layer_kinds(const Json& config, const std::string& where, ModelShape& shape) {
  int64_t sparse_step = positive_or(config, "decoder_sparse_step", 1, where);
  std::vector<int64_t> mlp_only;
  if (config.contains("mlp_only_layers") && !config["mlp_only_layers"].is_null()) {
    const Json& list = config["mlp_only_layers"];
    if (!list.is_array()) throw_bad_input(where + ": field 'mlp_only_layers' must be an array of layer indices");
    for (const Json& item : list) {
      if (!item.is_number_integer()) {
        throw_bad_input(where + ": field 'mlp_only_layers' holds " + describe_json(item) + ", not a layer index");
      }
      mlp_only.push_back(item.get<int64_t>());
    }
  }
  shape.layer_kinds.clear();
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool listed = std::find(mlp_only.begin(), mlp_only.end(), layer) != mlp_only.end();
    bool moe = !listed && shape.num_routed_experts > 0 && (layer + 1) % sparse_step == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
}

void refuse_sliding_window(const Json& config, const std::string& enabled_key, const std::string& where) {
  bool enabled = enabled_key.empty() ? config.contains("sliding_window") && !config["sliding_window"].is_null()
                                     : bool_or(config, enabled_key, false, where);
  if (enabled) {
    throw_bad_input(where + ": field '" + (enabled_key.empty() ? std::string("sliding_window") : enabled_key) +
                    "' turns on sliding-window attention, which is not supported (set it to " +
                    (enabled_key.empty() ? "null" : "false") + ")");
  }
}

void check_top_k(const ModelShape& shape, const std::string& where) {
  if (shape.experts_per_token > shape.num_routed_experts) {
    throw_bad_input(where + ": num_experts_per_tok " + std::to_string(shape.experts_per_token) +
                    " exceeds the number of routed experts " + std::to_string(shape.num_routed_experts));
  }
}

void read_expert_groups(const Json& config, const std::string& where, int64_t default_n_group,
                        int64_t default_topk_group, int64_t min_group_size, ModelShape& shape) {
  shape.n_group = positive_or(config, "n_group", default_n_group, where);
  shape.topk_group = positive_or(config, "topk_group", default_topk_group, where);
  if (shape.num_routed_experts % shape.n_group != 0 || shape.num_routed_experts / shape.n_group < min_group_size) {
    throw_bad_input(where + ": field 'n_group' " + std::to_string(shape.n_group) + " must divide the " +
                    std::to_string(shape.num_routed_experts) + " routed experts into groups of at least " +
                    std::to_string(min_group_size));
  }
  if (shape.topk_group > shape.n_group) {
    throw_bad_input(where + ": field 'topk_group' " + std::to_string(shape.topk_group) + " exceeds n_group " +
                    std::to_string(shape.n_group));
  }
}

void read_routed_scaling_factor(const Json& config, const std::string& where, double fallback, ModelShape& shape) {
  shape.routed_scaling_factor = number_or(config, "routed_scaling_factor", fallback, where);
  if (!(shape.routed_scaling_factor > 0) || shape.routed_scaling_factor > 1000) {
    throw_bad_input(where + ": field 'routed_scaling_factor' must be in (0, 1000]");
  }
}

void set_dense_then_moe_layers(int64_t first_dense, int64_t every, ModelShape& shape) {
  shape.layer_kinds.clear();
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    shape.layer_kinds.push_back(layer >= first_dense && layer % every == 0 ? LayerKind::kMoe : LayerKind::kDense);
  }
}

}  // namespace cdmoe::model
