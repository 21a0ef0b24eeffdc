#include "apps/model_card.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace cdmoe {
namespace {

std::string number(double value) {
  std::ostringstream out;
  out << std::setprecision(6) << value;
  return out.str();
}

// A YAML double-quoted scalar.
std::string yaml_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// What the plan does, a line per layer it changes.
std::string plan_lines(const Plan& plan) {
  if (plan.layers().empty()) return "- no layer changed (the original architecture)\n";
  std::ostringstream out;
  for (const auto& [layer, lp] : plan.layers()) {
    out << "- layer " << layer << ": ";
    switch (lp.op) {
      case LayerOp::kCondense: {
        out << "condensed to one dense MLP: the shared experts";
        if (!lp.experts.empty()) {
          out << " and routed experts";
          for (size_t i = 0; i < lp.experts.size(); ++i) out << (i ? ", " : " ") << lp.experts[i];
        }
        out << ", active for every token, no router";
        break;
      }
      case LayerOp::kPrune: out << "pruned to " << lp.experts.size() << " routed experts"; break;
      case LayerOp::kDrop: out << "MoE block dropped (attention kept)"; break;
      case LayerOp::kDropBlock: out << "removed (attention and MoE block)"; break;
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace

std::string model_card(const ModelCardInput& in) {
  // The hub name the source was saved with, else its directory's name.
  std::string base = std::filesystem::path(in.source_dir).lexically_normal().filename().string();
  auto named = in.source_config.find("_name_or_path");
  if (named != in.source_config.end() && named->is_string() && !named->get<std::string>().empty()) base = named->get<std::string>();
  std::ostringstream card;
  card << "---\n"
       << "base_model: " << yaml_quoted(base) << "\n"
       << (in.format == "transformers" ? "library_name: transformers\n" : "")
       << "tags:\n  - cdmoe\n  - mixture-of-experts\n  - condensed\n  - " << in.stock_type << "\n"
       << "---\n\n"
       << "# " << base << ", condensed with cdmoe\n\n"
       << "A Mixture-of-Experts model compressed the CD-MoE way (\"Condense, Don't Just Prune\", arXiv 2412.00069): "
       << "chosen MoE layers are replaced by a small dense MLP of their shared experts and a few routed experts.\n\n"
       << "- format: " << (in.format == "transformers" ? "a stock transformers `" + in.stock_type + "` checkpoint (no custom code)"
                                                    : "cdmoe's own (config.json carries the plan; loads with cdmoe)")
       << "\n- dtype: " << in.dtype << "\n- parameters: " << in.parameters << " (" << number(in.parameter_ratio)
       << " of the original's)\n\n## What was changed\n\n"
       << plan_lines(in.plan);
  if (in.db) {
    db::Statement origin(*in.db, R"sql(
      SELECT c.stage, c.method, coalesce(c.budget, ''), c.state, w.name, w.git_commit, w.model_hash, w.config_hash,
             w.data_hashes, w.started_at, coalesce(c.finished_at, '')
      FROM candidates c JOIN sweeps w ON w.id = c.sweep_id WHERE c.id = ?)sql");
    origin.bind(1, in.candidate);
    if (origin.step()) {
      card << "\n## Provenance\n\n"
           << "- results database: `" << in.db->path() << "`, candidate " << in.candidate << " (stage `" << origin.column_text(0)
           << "`, method `" << origin.column_text(1) << "`" << (origin.column_text(2).empty() ? "" : ", budget `" + origin.column_text(2) + "`")
           << ", state " << origin.column_text(3) << ", finished " << origin.column_text(10) << ")\n"
           << "- sweep `" << origin.column_text(4) << "`, started " << origin.column_text(9) << " by cdmoe " << origin.column_text(5) << "\n"
           << "- source model sha256 " << origin.column_text(6) << "; sweep configuration sha256 " << origin.column_text(7) << "\n"
           << "- data sha256: `" << origin.column_text(8) << "`\n";
    }
    db::Statement metrics(*in.db, R"sql(
      SELECT m.name, m.value, n.unit FROM metrics m JOIN metric_names n ON n.name = m.name
      WHERE m.candidate_id = ? ORDER BY m.name)sql");
    metrics.bind(1, in.candidate);
    std::map<std::string, std::pair<double, std::string>> values;
    while (metrics.step()) {
      values[metrics.column_text(0)] = {metrics.column_is_null(1) ? NAN : metrics.column_double(1), metrics.column_text(2)};
    }
    if (!values.empty()) {
      card << "\n## Metrics (as the sweep measured them)\n\n| metric | value | standard error | unit |\n|---|---|---|---|\n";
      const std::string suffix = "_stderr";
      for (const auto& [name, value] : values) {
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) continue;
        auto stderr_of = values.find(name + suffix);
        card << "| " << name << " | " << number(value.first) << " | "
             << (stderr_of == values.end() ? "" : number(stderr_of->second.first)) << " | " << value.second << " |\n";
      }
    }
  }
  card << "\n## How it was made\n\n```\n" << in.command << "\n```\n";
  return card.str();
}

}  // namespace cdmoe
