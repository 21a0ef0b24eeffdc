// The registered metrics against core's tables: the speed metric's names are exactly the ones
// the coordinator shares between a budget point and its fine-tune (core/objectives.h).
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/objectives.h"
#include "core/split.h"
#include "eval/metrics.h"

namespace cdmoe::eval {
namespace {

TEST(MetricRegistry, TheSpeedMetricProducesExactlyTheSharedSpeedNames) {
  const MetricDefinition& speed = find_metric("speed");
  const std::string names = speed.produces.substr(0, speed.produces.find(" ("));
  std::set<std::string> produced;
  for (const std::string& name : split_trimmed(names, ",")) produced.insert(name);
  EXPECT_EQ(produced, std::set<std::string>(speed_metric_names().begin(), speed_metric_names().end()));
}

}  // namespace
}  // namespace cdmoe::eval
