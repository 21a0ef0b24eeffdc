// The schema of a cdmoe results database: numbered forward migrations (migration i takes
// PRAGMA user_version from i to i+1) and the generated `results` view. The one place SQL DDL
// lives; see ARCHITECTURE.md §5 and README.md for what each table holds.
#pragma once

#include <string>
#include <vector>

namespace cdmoe::db {

const std::vector<std::string>& migrations();

// SQL that replaces the `results` view: one row per candidate, one column per metric name (in
// the given order) holding that candidate's value or NULL. Names must be valid metric names.
std::string results_view_sql(const std::vector<std::string>& metric_names);

}  // namespace cdmoe::db
