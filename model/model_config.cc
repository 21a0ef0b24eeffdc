#include "model/model_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::model {

namespace {

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

void read_yarn(const Json& scaling, double factor, double max_positions, const std::string& where, ModelConfig::Yarn& yarn) {
  yarn.on = true;
  yarn.factor = yarn.frequency_factor = factor;
  yarn.original_max_positions = max_positions;
  auto optional = [&](const char* key, double fallback) {
    return scaling.contains(key) && !scaling[key].is_null() ? require_number(scaling, key, where) : fallback;
  };
  if (scaling.contains("original_max_position_embeddings")) {
    yarn.original_max_positions = require_number(scaling, "original_max_position_embeddings", where);
    if (!(yarn.original_max_positions >= 1) || yarn.original_max_positions > max_positions) {
      throw_bad_input(where + ": original_max_position_embeddings must be in [1, max_position_embeddings]");
    }
    yarn.frequency_factor = max_positions / yarn.original_max_positions;
  }
  // beta_fast / beta_slow: "or" defaults, as transformers (a 0 means the default too).
  yarn.beta_fast = optional("beta_fast", 0) != 0 ? optional("beta_fast", 0) : 32;
  yarn.beta_slow = optional("beta_slow", 0) != 0 ? optional("beta_slow", 0) : 1;
  yarn.truncate = bool_or(scaling, "truncate", true, where);
  const double mscale = optional("mscale", 0);
  yarn.mscale_all_dim = optional("mscale_all_dim", 0);
  if (scaling.contains("attention_factor") && !scaling["attention_factor"].is_null()) {
    yarn.attention_factor = require_number(scaling, "attention_factor", where);
  } else if (mscale != 0 && yarn.mscale_all_dim != 0) {
    yarn.attention_factor = yarn_mscale(yarn.frequency_factor, mscale) / yarn_mscale(yarn.frequency_factor, yarn.mscale_all_dim);
  } else {
    yarn.attention_factor = yarn_mscale(yarn.frequency_factor, 1);
  }
  for (double value : {yarn.beta_fast, yarn.beta_slow, yarn.attention_factor, mscale, yarn.mscale_all_dim}) {
    if (!std::isfinite(value) || value < 0 || value > 1e6) throw_bad_input(where + ": yarn parameters must be finite, in [0, 1e6]");
  }
}

// Blocks past 2^16 weights a side are no checkpoint's (DeepSeek's are 128).
constexpr int64_t kMaxFp8Block = int64_t(1) << 16;

void read_fp8_blocks(const Json& quantization, const std::string& where, ModelConfig::Fp8Blocks& blocks) {
  const std::string method = require_string(quantization, "quant_method", where);
  if (method != "fp8") {
    throw_bad_input(where + ": quant_method \"" + method + "\" is not supported (supported: fp8 with block scales)");
  }
  const std::string format = string_or(quantization, "fmt", "e4m3", where);
  if (format != "e4m3") throw_bad_input(where + ": fmt \"" + format + "\" is not supported (supported: e4m3)");
  const Json& size = require_field(quantization, "weight_block_size", where);
  if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() || !size[1].is_number_integer() ||
      size[0].get<int64_t>() < 1 || size[1].get<int64_t>() < 1 || size[0].get<int64_t>() > kMaxFp8Block ||
      size[1].get<int64_t>() > kMaxFp8Block) {
    throw_bad_input(where + ": field 'weight_block_size' must be two integers in [1, " + std::to_string(kMaxFp8Block) +
                    "] (per-tensor and per-channel scales are not supported)");
  }
  blocks.rows = size[0].get<int64_t>();
  blocks.cols = size[1].get<int64_t>();
}

}  // namespace

double ModelConfig::Yarn::softmax_scale() const {
  return on && mscale_all_dim != 0 ? std::pow(yarn_mscale(factor, mscale_all_dim), 2) : 1.0;
}

ModelConfig model_config_from_json(const Json& config, const std::string& where) {
  ModelConfig result;
  result.shape = model_shape_from_config(config, where);
  result.family = &find_family(result.shape.model_type, where);
  return with_json_errors(where, [&] {
    result.rms_norm_eps = number_or(config, "rms_norm_eps", result.family->default_rms_norm_eps, where);
    result.rope_theta = number_or(config, "rope_theta", result.family->default_rope_theta, where);
    std::string act = string_or(config, "hidden_act", "silu", where);
    if (act != "silu") throw_bad_input(where + ": hidden_act \"" + act + "\" is not supported (supported: silu)");
    // transformers 5 writes rope_parameters {"rope_type", "rope_theta", "factor", ...} in place
    // of rope_theta and rope_scaling; a default rope_type there means no scaling.
    const bool v5 = config.contains("rope_parameters") && !config["rope_parameters"].is_null();
    const std::string scaling_key = v5 ? "rope_parameters" : "rope_scaling";
    if (v5) result.rope_theta = number_or(config[scaling_key], "rope_theta", result.rope_theta, where + ": rope_parameters");
    if (!(result.rms_norm_eps > 0) || !(result.rope_theta > 0) || !std::isfinite(result.rope_theta)) {
      throw_bad_input(where + ": rms_norm_eps and rope_theta must be positive, got " + std::to_string(result.rms_norm_eps) +
                      " and " + std::to_string(result.rope_theta));
    }
    if (config.contains(scaling_key) && !config[scaling_key].is_null() &&
        !(v5 && string_or(config[scaling_key], "rope_type", "default", where + ": rope_parameters") == "default")) {
      const Json& scaling = config[scaling_key];
      const std::string scaling_where = where + ": " + scaling_key;
      std::string type = string_or(scaling, "type", string_or(scaling, "rope_type", "", scaling_where), scaling_where);
      if (type != "linear" && type != "yarn") {
        throw_bad_input(scaling_where + ": type \"" + type + "\" is not supported (supported: none, linear, yarn)");
      }
      const double factor = require_number(scaling, "factor", scaling_where);
      if (!(factor > 0) || !std::isfinite(factor) || factor > 1e6) throw_bad_input(scaling_where + ": factor must be in (0, 1e6]");
      if (type == "linear") {
        result.rope_linear_factor = factor;
      } else {
        read_yarn(scaling, factor, double(result.shape.max_position_embeddings), scaling_where, result.yarn);
      }
    }
    if (config.contains("quantization_config") && !config["quantization_config"].is_null()) {
      read_fp8_blocks(config["quantization_config"], where + ": quantization_config", result.fp8);
    }
    return result;
  });
}

}  // namespace cdmoe::model
