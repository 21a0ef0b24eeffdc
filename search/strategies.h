// Factories of the registered strategies (the registry in registry.cc lists them by name).
#pragma once

#include <memory>
#include <vector>

#include "search/strategy.h"

namespace cdmoe::search {

std::unique_ptr<Strategy> make_cdmoe_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_drop_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_blockdrop_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_prune_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_random_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_plans_strategy(const ModelShape& shape, const SearchConfig& config);
// Runs several strategies side by side (a method and its baselines); each owns its stages.
std::unique_ptr<Strategy> make_combined_strategy(std::vector<std::unique_ptr<Strategy>> parts);

}  // namespace cdmoe::search
