#include "core/model_shape.h"

#include <algorithm>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe {
namespace {

int64_t require_positive(const Json& config, const std::string& key, const std::string& where) {
  int64_t value = require_int(config, key, where);
  if (value <= 0) throw_bad_input(where + ": field '" + key + "' must be positive, got " + std::to_string(value));
  return value;
}

int64_t positive_or(const Json& config, const std::string& key, int64_t fallback, const std::string& where) {
  int64_t value = int_or(config, key, fallback, where);
  if (value <= 0) throw_bad_input(where + ": field '" + key + "' must be positive, got " + std::to_string(value));
  return value;
}

// Keys every decoder-only family shares, with their transformers names.
void read_common(const Json& config, const std::string& where, ModelShape& shape) {
  shape.num_layers = require_positive(config, "num_hidden_layers", where);
  shape.hidden_size = require_positive(config, "hidden_size", where);
  shape.vocab_size = require_positive(config, "vocab_size", where);
  shape.num_attention_heads = require_positive(config, "num_attention_heads", where);
  shape.num_key_value_heads = positive_or(config, "num_key_value_heads", shape.num_attention_heads, where);
  if (shape.hidden_size % shape.num_attention_heads != 0) {
    throw_bad_input(where + ": hidden_size " + std::to_string(shape.hidden_size) +
                    " is not divisible by num_attention_heads " + std::to_string(shape.num_attention_heads));
  }
  if (shape.num_attention_heads % shape.num_key_value_heads != 0) {
    throw_bad_input(where + ": num_attention_heads " + std::to_string(shape.num_attention_heads) +
                    " is not divisible by num_key_value_heads " + std::to_string(shape.num_key_value_heads));
  }
  shape.head_dim = shape.hidden_size / shape.num_attention_heads;
  shape.torch_dtype = string_or(config, "torch_dtype", "float32", where);
  shape.tie_word_embeddings = bool_or(config, "tie_word_embeddings", false, where);
}

void check_top_k(const ModelShape& shape, const std::string& where) {
  if (shape.experts_per_token > shape.num_routed_experts) {
    throw_bad_input(where + ": num_experts_per_tok " + std::to_string(shape.experts_per_token) +
                    " exceeds the number of routed experts " + std::to_string(shape.num_routed_experts));
  }
}

// DeepSeekMoE v1 (modeling_deepseek.py / DeepseekConfig).
ModelShape read_deepseek(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common(config, where, shape);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 2048, where);
  shape.dense_intermediate_size = require_positive(config, "intermediate_size", where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 1407, where);
  bool attention_bias = bool_or(config, "attention_bias", false, where);
  shape.attention_qkv_bias = shape.attention_output_bias = attention_bias;
  // n_routed_experts null means a dense model in DeepseekConfig.
  int64_t routed = int_or(config, "n_routed_experts", 0, where);
  if (routed < 0) throw_bad_input(where + ": field 'n_routed_experts' must not be negative");
  shape.num_routed_experts = routed;
  int64_t first_dense = int_or(config, "first_k_dense_replace", 0, where);
  int64_t layer_freq = positive_or(config, "moe_layer_freq", 1, where);
  if (first_dense < 0) throw_bad_input(where + ": field 'first_k_dense_replace' must not be negative");
  if (routed > 0) {
    shape.experts_per_token = require_positive(config, "num_experts_per_tok", where);
    int64_t shared = int_or(config, "n_shared_experts", 0, where);
    if (shared < 0) throw_bad_input(where + ": field 'n_shared_experts' must not be negative");
    shape.shared_intermediate_size = shared * shape.expert_intermediate_size;
    shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
    std::string scoring = string_or(config, "scoring_func", "softmax", where);
    if (scoring != "softmax") {
      throw_bad_input(where + ": field 'scoring_func' is \"" + scoring + "\"; only \"softmax\" is supported");
    }
    check_top_k(shape, where);
  }
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool moe = routed > 0 && layer >= first_dense && layer % layer_freq == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
  return shape;
}

// Qwen1.5-MoE / Qwen2-MoE (modeling_qwen2_moe.py / Qwen2MoeConfig).
ModelShape read_qwen2_moe(const Json& config, const std::string& where) {
  ModelShape shape;
  read_common(config, where, shape);
  shape.max_position_embeddings = positive_or(config, "max_position_embeddings", 32768, where);
  shape.dense_intermediate_size = positive_or(config, "intermediate_size", 22016, where);
  shape.expert_intermediate_size = positive_or(config, "moe_intermediate_size", 1408, where);
  shape.shared_intermediate_size = positive_or(config, "shared_expert_intermediate_size", 5632, where);
  shape.num_routed_experts = int_or(config, "num_experts", 60, where);
  if (shape.num_routed_experts < 0) throw_bad_input(where + ": field 'num_experts' must not be negative");
  shape.experts_per_token = positive_or(config, "num_experts_per_tok", 4, where);
  shape.norm_topk_prob = bool_or(config, "norm_topk_prob", false, where);
  shape.attention_qkv_bias = true;
  shape.attention_output_bias = false;
  shape.shared_expert_gate = true;
  if (shape.num_routed_experts > 0) check_top_k(shape, where);
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
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    bool listed = std::find(mlp_only.begin(), mlp_only.end(), layer) != mlp_only.end();
    bool moe = !listed && shape.num_routed_experts > 0 && (layer + 1) % sparse_step == 0;
    shape.layer_kinds.push_back(moe ? LayerKind::kMoe : LayerKind::kDense);
  }
  return shape;
}

struct FamilyReader {
  const char* model_type;
  ModelShape (*read)(const Json&, const std::string&);
};

// One line per model family (DESIGN.md §4).
constexpr FamilyReader kFamilies[] = {
    {"deepseek", read_deepseek},
    {"qwen2_moe", read_qwen2_moe},
};

}  // namespace

bool ModelShape::is_moe_layer(int64_t layer) const {
  return layer >= 0 && layer < int64_t(layer_kinds.size()) && layer_kinds[size_t(layer)] == LayerKind::kMoe;
}

std::vector<int> ModelShape::moe_layers() const {
  std::vector<int> layers;
  for (size_t i = 0; i < layer_kinds.size(); ++i) {
    if (layer_kinds[i] == LayerKind::kMoe) layers.push_back(int(i));
  }
  return layers;
}

std::string supported_model_types() {
  std::string names;
  for (const FamilyReader& family : kFamilies) names += (names.empty() ? "" : ", ") + std::string(family.model_type);
  return names;
}

ModelShape model_shape_from_config(const Json& config, const std::string& where) {
  std::string model_type = require_string(config, "model_type", where);
  for (const FamilyReader& family : kFamilies) {
    if (model_type == family.model_type) {
      ModelShape shape = family.read(config, where);
      shape.model_type = model_type;
      return shape;
    }
  }
  throw_bad_input(where + ": model_type \"" + model_type + "\" is not supported (supported: " +
                  supported_model_types() + ")");
}

ModelShape read_model_shape(const std::string& model_dir_or_config) {
  std::string path = model_dir_or_config;
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) path += "/config.json";
  return model_shape_from_config(read_json_file(path), path);
}

}  // namespace cdmoe
