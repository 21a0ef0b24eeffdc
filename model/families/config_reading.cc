#include "model/families/config_reading.h"

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

void read_common_shape(const Json& config, const std::string& where, ModelShape& shape) {
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

}  // namespace cdmoe::model
