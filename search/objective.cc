#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "search/candidate.h"

namespace cdmoe::search {
namespace {

constexpr const char* kDivergences[] = {"js-hidden", "js-logits", "kl", "mse", "cosine"};

}  // namespace

std::string divergence_names() {
  std::string names;
  for (const char* name : kDivergences) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

void validate_objective(const Objective& objective, const std::string& where) {
  bool known = false;
  for (const char* name : kDivergences) known = known || objective.divergence == name;
  if (!known) {
    throw_bad_input(where + ": objective \"" + objective.divergence + "\" is not one of " + divergence_names());
  }
  if (objective.scope != "layer" && objective.scope != "model") {
    throw_bad_input(where + ": scope \"" + objective.scope + "\" is not one of layer, model");
  }
  if (!(objective.calib_fraction > 0 && objective.calib_fraction <= 1)) {
    throw_bad_input(where + ": calibration fraction must be in (0, 1]");
  }
}

std::string Objective::metric_name() const {
  std::string name = divergence;
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  name += "_" + scope;
  if (calib_fraction < 1) name += "_f" + std::to_string(int(std::lround(calib_fraction * 100)));
  return name;
}

Json Objective::to_json() const {
  return Json{{"divergence", divergence}, {"scope", scope}, {"calib_fraction", calib_fraction},
              {"metric", metric_name()}};
}

bool Objective::operator==(const Objective& other) const {
  return divergence == other.divergence && scope == other.scope && calib_fraction == other.calib_fraction;
}

}  // namespace cdmoe::search
