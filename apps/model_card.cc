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
  if (in.record) {
    const db::CandidateRecord& r = *in.record;
    card << "\n## Provenance\n\n"
         << "- results database: `" << in.db_path << "`, candidate " << in.candidate << " (stage `" << r.stage << "`, method `"
         << r.method << "`" << (r.budget.empty() ? "" : ", budget `" + r.budget + "`") << ", state " << r.state << ", finished "
         << r.finished_at << ")\n"
         << "- sweep `" << r.sweep << "`, started " << r.started_at << " by cdmoe " << r.git_commit << "\n"
         << "- source model sha256 " << r.model_hash << "; sweep configuration sha256 " << r.config_hash << "\n"
         << "- data sha256: `" << r.data_hashes << "`\n";
    std::map<std::string, const Metric*> by_name;
    for (const Metric& m : r.metrics) by_name[m.name] = &m;
    if (!by_name.empty()) {
      card << "\n## Metrics (as the sweep measured them)\n\n| metric | value | standard error | unit |\n|---|---|---|---|\n";
      const std::string suffix = "_stderr";
      for (const auto& [name, m] : by_name) {
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) continue;
        auto stderr_of = by_name.find(name + suffix);
        card << "| " << name << " | " << number(m->value) << " | "
             << (stderr_of == by_name.end() ? "" : number(stderr_of->second->value)) << " | " << m->unit << " |\n";
      }
    }
  }
  card << "\n## How it was made\n\n```\n" << in.command << "\n```\n";
  return card.str();
}

}  // namespace cdmoe
