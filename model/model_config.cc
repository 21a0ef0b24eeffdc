#include "model/model_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::model {

ModelConfig model_config_from_json(const Json& config, const std::string& where) {
  ModelConfig result;
  result.shape = model_shape_from_config(config, where);
  result.family = &find_family(result.shape.model_type, where);
  return with_json_errors(where, [&] {
    result.rms_norm_eps = number_or(config, "rms_norm_eps", 1e-6, where);
    result.rope_theta = number_or(config, "rope_theta", 10000, where);
    std::string act = string_or(config, "hidden_act", "silu", where);
    if (act != "silu") throw_bad_input(where + ": hidden_act \"" + act + "\" is not supported (supported: silu)");
    if (config.contains("rope_scaling") && !config["rope_scaling"].is_null()) {
      const Json& scaling = config["rope_scaling"];
      std::string type = string_or(scaling, "type", string_or(scaling, "rope_type", "", where + ": rope_scaling"),
                                   where + ": rope_scaling");
      if (type != "linear") {
        throw_bad_input(where + ": rope_scaling type \"" + type + "\" is not supported (supported: none, linear)");
      }
      result.rope_linear_factor = require_number(scaling, "factor", where + ": rope_scaling");
      if (!(result.rope_linear_factor > 0)) throw_bad_input(where + ": rope_scaling factor must be positive");
    }
    return result;
  });
}

}  // namespace cdmoe::model
