#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/objectives.h"
#include "search/candidate.h"

namespace cdmoe::search {

void validate_objective(const Objective& objective, const std::string& where) {
  find_divergence(objective.divergence, where);
  validate_objective_scope(objective.scope, where);
  if (!(objective.calib_fraction > 0 && objective.calib_fraction <= 1)) {
    throw_bad_input(where + ": calibration fraction must be in (0, 1]");
  }
}

std::string Objective::metric_name() const {
  return divergence_metric_name(find_divergence(divergence, "objective"), scope, calib_fraction);
}

Json Objective::to_json() const {
  return Json{{"divergence", divergence}, {"scope", scope}, {"calib_fraction", calib_fraction},
              {"metric", metric_name()}};
}

bool Objective::operator==(const Objective& other) const {
  return divergence == other.divergence && scope == other.scope && calib_fraction == other.calib_fraction;
}

}  // namespace cdmoe::search
