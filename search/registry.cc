#include "core/error.h"
#include "core/split.h"
#include "search/strategies.h"

namespace cdmoe::search {
namespace {

struct Registered {
  const char* name;
  std::unique_ptr<Strategy> (*make)(const ModelShape&, const SearchConfig&);
};

// One line per strategy (ARCHITECTURE.md §4).
constexpr Registered kStrategies[] = {
    {"cdmoe", make_cdmoe_strategy},   {"drop", make_drop_strategy},   {"prune", make_prune_strategy},
    {"random", make_random_strategy}, {"plans", make_plans_strategy}, {"blockdrop", make_blockdrop_strategy},
};

}  // namespace

std::string strategy_names() {
  std::string names;
  for (const Registered& s : kStrategies) names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const ModelShape& shape, const SearchConfig& config) {
  validate_objective(config.expert_objective, "--expert-objective");
  validate_objective(config.layer_objective, "--objective");
  if (config.beam_width < 1) throw_bad_input("--beam-width must be at least 1");
  if (config.screen_fraction < 0 || config.screen_fraction >= 1) {
    throw_bad_input("--screen-fraction must be in [0, 1) (0 turns early stopping off)");
  }
  std::vector<std::unique_ptr<Strategy>> parts;
  std::vector<std::string> seen;
  for (const std::string& one : split_trimmed(name, ",")) {  // the method and its baselines side by side
    const Registered* found = nullptr;
    for (const Registered& s : kStrategies) {
      if (one == s.name) found = &s;
    }
    if (!found) throw_bad_input("unknown strategy \"" + one + "\" (strategies: " + strategy_names() + ")");
    for (const std::string& name_seen : seen) {
      if (name_seen == one) throw_bad_input("strategy \"" + one + "\" is listed twice");
    }
    seen.push_back(one);
    parts.push_back(found->make(shape, config));
  }
  if (parts.size() == 1) return std::move(parts.front());
  return make_combined_strategy(std::move(parts));
}

}  // namespace cdmoe::search
