#include "model/model_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::model {

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
      if (type != "linear") {
        throw_bad_input(scaling_where + ": type \"" + type + "\" is not supported (supported: none, linear)");
      }
      result.rope_linear_factor = require_number(scaling, "factor", scaling_where);
      if (!(result.rope_linear_factor > 0)) throw_bad_input(scaling_where + ": factor must be positive");
    }
    return result;
  });
}

}  // namespace cdmoe::model
