// Factories of the registered strategies (the registry in registry.cc lists them by name).
#pragma once

#include <memory>

#include "search/strategy.h"

namespace cdmoe::search {

std::unique_ptr<Strategy> make_cdmoe_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_drop_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_prune_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_random_strategy(const ModelShape& shape, const SearchConfig& config);
std::unique_ptr<Strategy> make_plans_strategy(const ModelShape& shape, const SearchConfig& config);

}  // namespace cdmoe::search
