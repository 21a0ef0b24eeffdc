// Strategy overhead per candidate (next() + record()) and candidate counts of a full search on
// DeepSeekMoE-16B's shape (27 MoE layers x 64 experts), with a synthetic objective whose own
// cost is not timed. One JSON line per configuration.
//   search_bench [CONFIG_JSON]   (default: the DeepSeekMoE-16B fixture)
#include <chrono>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "core/model_shape.h"
#include "model/family.h"
#include "core/sha256.h"
#include "search/strategy.h"

using namespace cdmoe;
using namespace cdmoe::search;
using Clock = std::chrono::steady_clock;

namespace {

// A cheap deterministic value per (layer, expert) and per layer, additive over the plan.
double synthetic_value(const Candidate& c) {
  double total = 0;
  for (const auto& [layer, lp] : c.plan.layers()) {
    total += double((layer * 7919) % 101) / 101;
    for (int e : lp.experts) total += double((layer * 131 + e * 17) % 97) / 97;
  }
  return total;
}

nlohmann::json run(const ModelShape& shape, const std::string& name, SearchConfig config) {
  auto strategy = make_strategy(name, shape, config);
  std::map<std::string, long> per_stage;
  long candidates = 0;
  double strategy_seconds = 0;
  for (;;) {
    auto start = Clock::now();
    std::vector<Candidate> batch = strategy->next();
    strategy_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    if (batch.empty()) break;
    std::vector<double> values;
    for (const Candidate& c : batch) values.push_back(synthetic_value(c));  // the "workers"
    start = Clock::now();
    for (size_t i = 0; i < batch.size(); ++i) {
      strategy->record(batch[i].stage, batch[i].plan, {{batch[i].objective.metric_name(), values[i], ""}});
    }
    strategy_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    for (const Candidate& c : batch) ++per_stage[c.stage];
    candidates += long(batch.size());
  }
  return {{"bench", "search_overhead"},
          {"strategy", name},
          {"experts_kept", config.experts_kept},
          {"beam_width", config.beam_width},
          {"screen_fraction", config.screen_fraction},
          {"finished", strategy->finished()},
          {"candidates", candidates},
          {"candidates_per_stage", per_stage},
          {"budget_points", strategy->budget_points().size()},
          {"strategy_seconds", strategy_seconds},
          {"us_per_candidate", 1e6 * strategy_seconds / double(candidates)}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = argc > 1 ? argv[1] : std::string(CDMOE_SOURCE_DIR) + "/tests/fixtures/configs/deepseek-moe-16b";
  ModelShape shape = model::read_model_shape(config_path);
  SearchConfig config;
  config.experts_kept = {0, 6};
  config.budgets = parse_budgets("layers:1-27", "budgets");
  std::printf("%s\n", run(shape, "cdmoe", config).dump().c_str());
  config.beam_width = 4;
  std::printf("%s\n", run(shape, "cdmoe", config).dump().c_str());
  config.beam_width = 1;
  config.screen_fraction = 0.25;
  std::printf("%s\n", run(shape, "cdmoe", config).dump().c_str());
  config.screen_fraction = 0;
  config.budgets = parse_budgets("memory:0.5,0.7,0.9", "budgets");
  std::printf("%s\n", run(shape, "prune", config).dump().c_str());
  return 0;
}
