#include "core/objectives.h"

#include <cmath>

#include "core/error.h"

namespace cdmoe {

const std::vector<DivergenceInfo>& divergences() {
  static const std::vector<DivergenceInfo> table = {
      {DivergenceKind::kJsHidden, "js-hidden", "js_hidden", "nats", false},
      {DivergenceKind::kJsLogits, "js-logits", "js_logits", "nats", true},
      {DivergenceKind::kKl, "kl", "kl", "nats", true},
      // Mean squared difference of hidden states, and 1 - cosine similarity: pure numbers.
      {DivergenceKind::kMse, "mse", "mse", "", false},
      {DivergenceKind::kCosine, "cosine", "cosine", "", false},
  };
  return table;
}

std::string divergence_names() {
  std::string names;
  for (const DivergenceInfo& d : divergences()) names += (names.empty() ? "" : ", ") + std::string(d.name);
  return names;
}

const DivergenceInfo& find_divergence(const std::string& name, const std::string& where) {
  for (const DivergenceInfo& d : divergences()) {
    if (name == d.name) return d;
  }
  throw_bad_input(where + ": objective \"" + name + "\" is not one of " + divergence_names());
}

DivergenceMean divergence_mean_named(const std::string& name, const std::string& where) {
  if (name == "token") return DivergenceMean::kToken;
  if (name == "sequence") return DivergenceMean::kSequence;
  throw_bad_input(where + ": \"" + name + "\" is not one of token, sequence");
}


void validate_objective_scope(const std::string& scope, const std::string& where) {
  for (const char* known : kObjectiveScopes) {
    if (scope == known) return;
  }
  throw_bad_input(where + ": scope \"" + scope + "\" is not one of layer, model");
}

std::string divergence_metric_name(const DivergenceInfo& divergence, const std::string& scope, double calib_fraction) {
  std::string name = std::string(divergence.metric_stem) + "_" + scope;
  if (calib_fraction < 1) name += "_f" + std::to_string(int(std::lround(calib_fraction * 100)));
  return name;
}

const std::vector<std::string>& speed_metric_names() {
  static const std::vector<std::string> names = {"tokens_per_s", "speedup",     "speedup_ci_low",
                                                 "speedup_ci_high", "speed_pairs", "speed_tokens"};
  return names;
}

}  // namespace cdmoe
