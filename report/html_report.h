// The sweep report as one self-contained HTML page: inline SVG and CSS, no script, font or
// network access, so it opens from a file on an offline machine and can be mailed. Built from
// database snapshots alone (db/sweep_snapshot.h); every name and plan from the database is
// escaped (report/markup.h). Several sweeps are drawn side by side in the same charts.
// Sections: status (with a banner while a sweep is not DONE), accuracy against memory and
// speed, budget curves, the search (expert and layer orders, router heat map), fine-tuning,
// the Pareto front with plans, provenance.
#pragma once

#include <string>
#include <vector>

#include "db/sweep_snapshot.h"

namespace cdmoe::report {

struct PageInfo {
  std::string database;      // the file the snapshots were read from
  std::string generated_at;  // ISO-8601 UTC
  std::string generator;     // e.g. "cdmoe-report (git abc123)"
};

std::string render_html_report(const std::vector<db::SweepSnapshot>& sweeps, const PageInfo& page);

// One chart of the sweeps' full evaluations, y against x (metric names or "condensed_layers"),
// as a standalone SVG document (for papers): `cdmoe-report plot`.
std::string render_metric_svg(const std::vector<db::SweepSnapshot>& sweeps, const std::string& x, const std::string& y);

}  // namespace cdmoe::report
