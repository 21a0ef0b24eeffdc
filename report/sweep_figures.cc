#include "report/sweep_figures.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/objectives.h"
#include "db/store.h"

namespace cdmoe::report {
namespace {

constexpr const char* kFullStage = "full_eval";

// Candidates with a full evaluation: the budget points and the original, and the fine-tuned
// ones (the sweep's, and cdmoe-train's recorded into it), whose series sit beside their parents'.
bool evaluated_in_full(const db::SnapshotCandidate& c) {
  return c.stage == kFullStage || c.stage == db::kFinetuneStage || c.stage == db::kManualFinetuneStage;
}

struct PlanLayers {
  std::map<int, Json> layers;  // decoder layer -> its op object
};

PlanLayers plan_layers(const std::string& plan_json) {
  PlanLayers out;
  Json plan = Json::parse(plan_json, nullptr, /*allow_exceptions=*/false);
  if (!plan.is_object() || !plan.contains("layers") || !plan["layers"].is_object()) return out;
  for (auto it = plan["layers"].begin(); it != plan["layers"].end(); ++it) out.layers[std::atoi(it.key().c_str())] = *it;
  return out;
}

std::string series_name(const std::string& method, const db::SweepSnapshot& sweep, size_t sweeps) {
  return sweeps > 1 ? method + " \u00b7 " + sweep.name : method;
}

// x or y of a candidate: a metric, or a value derived from its plan.
bool value_of(const db::SnapshotCandidate& c, const std::string& name, double& out) {
  if (name == kCondensedLayers) {
    out = double(plan_layers(c.plan_json).layers.size());
    return true;
  }
  auto it = c.metrics.find(name);
  if (it == c.metrics.end()) return false;
  out = it->second;
  return true;
}

// The standard error of y: "<y>_stderr", or for the mean accuracy the tasks' combined.
double standard_error(const db::SnapshotCandidate& c, const std::string& y) {
  if (auto it = c.metrics.find(y + "_stderr"); it != c.metrics.end()) return it->second;
  if (y != "task_acc_mean") return NAN;
  double sum = 0;
  int tasks = 0;
  for (const auto& [name, value] : c.metrics) {
    const std::string suffix = "_acc_stderr";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        name.find("_acc_norm_stderr") == std::string::npos) {
      sum += value * value;
      ++tasks;
    }
  }
  return tasks ? std::sqrt(sum) / tasks : NAN;
}

// Screening metrics ("..._f25") end otherwise, so a suffix test picks the full-data objective.
bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string short_plan(const std::string& plan_json) {
  return plan_json.size() > 160 ? plan_json.substr(0, 157) + "..." : plan_json;
}

}  // namespace

std::map<std::string, int> method_styles(const std::vector<db::SweepSnapshot>& sweeps) {
  std::set<std::string> methods;
  for (const db::SweepSnapshot& s : sweeps) {
    for (const db::SnapshotCandidate& c : s.candidates) {
      if (evaluated_in_full(c)) methods.insert(series_name(c.method + (c.stage == db::kManualFinetuneStage ? " (cdmoe-train)" : ""), s, sweeps.size()));
    }
  }
  std::map<std::string, int> styles;
  int next = 1;
  for (const std::string& m : methods) styles[m] = m.rfind("original", 0) == 0 ? 0 : next++;
  return styles;
}

std::string metric_label(const std::string& metric, const std::vector<db::SweepSnapshot>& sweeps) {
  static const std::map<std::string, std::string> kKnown = {
      {"param_ratio", "parameters (fraction of the original)"},
      {"speedup", "measured speed-up over the original (\u00d7)"},
      {"task_acc_mean", "mean task accuracy (fraction correct)"},
      {"perplexity", "held-out perplexity"},
      {kCondensedLayers, "layers changed by the plan"},
      {"param_bytes", "parameter memory (bytes)"},
      {"tokens_per_s", "tokens per second"},
  };
  if (auto it = kKnown.find(metric); it != kKnown.end()) return it->second;
  for (const db::SweepSnapshot& s : sweeps) {
    auto unit = s.units.find(metric);
    if (unit != s.units.end() && !unit->second.empty()) return metric + " (" + unit->second + ")";
  }
  return metric;
}

std::string objective_metric(const db::SweepSnapshot& sweep) {
  Json config = Json::parse(sweep.config_json, nullptr, false);
  std::string name = config.is_object() && config.contains("objective") && config["objective"].is_string()
                         ? config["objective"].get<std::string>() : "js-logits";
  for (const DivergenceInfo& d : divergences()) {
    if (name == d.name) return divergence_metric_name(d, "model");
  }
  return "js_logits_model";
}

ChartSpec metric_chart(const std::vector<db::SweepSnapshot>& sweeps, const std::map<std::string, int>& styles,
                       const std::string& x, const std::string& y, bool pareto_ring) {
  ChartSpec spec;
  spec.title = y + " against " + x;
  spec.x.label = metric_label(x, sweeps);
  spec.x.integer = x == kCondensedLayers;
  spec.y.label = metric_label(y, sweeps);
  bool running = std::any_of(sweeps.begin(), sweeps.end(), [](const db::SweepSnapshot& s) { return !s.finished(); });
  spec.empty_message = "no full evaluation with " + x + " and " + y + (running ? " yet" : "");
  if (y == "perplexity" && !running) spec.empty_message += " (cdmoe-sweep --ppl FILE measures it)";
  bool any_ring = false;
  for (const db::SweepSnapshot& s : sweeps) {
    std::set<int64_t> front(s.pareto_ids.begin(), s.pareto_ids.end());
    std::map<std::string, std::vector<std::pair<std::pair<double, double>, ChartPoint>>> by_method;
    std::map<int64_t, ChartPoint> drawn;  // candidate -> its point, for the links to parents
    for (const db::SnapshotCandidate& c : s.candidates) {
      if (!evaluated_in_full(c) || c.state != CandidateState::kDone) continue;
      ChartPoint p;
      if (!value_of(c, x, p.x) || !value_of(c, y, p.y)) continue;
      p.candidate = c.id;
      p.y_error = standard_error(c, y);
      if (auto lo = c.metrics.find(x + "_ci_low"), hi = c.metrics.find(x + "_ci_high");
          lo != c.metrics.end() && hi != c.metrics.end()) {
        p.x_low = lo->second, p.x_high = hi->second;
      }
      p.highlighted = pareto_ring && front.count(c.id);
      any_ring = any_ring || p.highlighted;
      p.title = "candidate " + std::to_string(c.id) + " \u00b7 " + c.method + (c.budget.empty() ? "" : " \u00b7 " + c.budget) +
                "\n" + x + " = " + format_number(p.x) + ", " + y + " = " + format_number(p.y) +
                (std::isfinite(p.y_error) ? " \u00b1 " + format_number(p.y_error, 3) : "") + "\nplan " + short_plan(c.plan_json);
      double layers = double(plan_layers(c.plan_json).layers.size());
      double ratio = c.metrics.count("param_ratio") ? c.metrics.at("param_ratio") : 1.0;
      drawn[c.id] = p;
      by_method[c.method + (c.stage == db::kManualFinetuneStage ? " (cdmoe-train)" : "")].push_back({{layers, -ratio}, p});
    }
    // Each fine-tuned point joined to the point it was fine-tuned from: what fine-tuning recovered.
    for (const db::SnapshotCandidate& c : s.candidates) {
      if (c.stage == kFullStage || !c.parent_id || !drawn.count(c.id) || !drawn.count(*c.parent_id)) continue;
      const ChartPoint &child = drawn.at(c.id), &parent = drawn.at(*c.parent_id);
      spec.links.push_back({parent.x, parent.y, child.x, child.y, *c.parent_id, c.id,
                            "candidate " + std::to_string(*c.parent_id) + " fine-tuned: candidate " + std::to_string(c.id) + " (" +
                                c.method + "), " + y + " " + format_number(parent.y) + " \u2192 " + format_number(child.y)});
    }
    for (auto& [method, points] : by_method) {
      std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      ChartSeries series;
      series.name = series_name(method, s, sweeps.size());
      auto style = styles.find(series.name);
      series.style = style == styles.end() ? 0 : style->second;
      for (auto& [order, point] : points) series.points.push_back(point);
      spec.series.push_back(std::move(series));
    }
  }
  std::stable_sort(spec.series.begin(), spec.series.end(),
                   [](const ChartSeries& a, const ChartSeries& b) { return a.style < b.style; });
  if (any_ring) spec.highlight_label = "on the Pareto front";
  return spec;
}

std::map<int, std::vector<ExpertRound>> expert_orders(const db::SweepSnapshot& sweep, std::string* metric) {
  // Expert-selection candidates change one layer; round r's candidates keep r experts.
  std::map<int, std::map<size_t, const db::SnapshotCandidate*>> best;  // layer -> round -> best
  std::map<int, std::map<size_t, double>> best_value;
  for (const db::SnapshotCandidate& c : sweep.candidates) {
    if (c.stage != "expert_select" || c.state != CandidateState::kDone || c.metrics.empty()) continue;
    PlanLayers plan = plan_layers(c.plan_json);
    if (plan.layers.size() != 1) continue;
    const auto& [layer, op] = *plan.layers.begin();
    if (!op.contains("experts") || !op["experts"].is_array()) continue;
    size_t round = op["experts"].size();
    // The search objective is the candidate's one metric whose name ends in _layer(_fNN).
    for (const auto& [name, value] : c.metrics) {
      if (!ends_with(name, "_layer")) continue;
      if (metric) *metric = name;
      auto it = best_value[layer].find(round);
      if (it == best_value[layer].end() || value < it->second) {
        best_value[layer][round] = value;
        best[layer][round] = &c;
      }
    }
  }
  std::map<int, std::vector<ExpertRound>> out;
  for (const auto& [layer, rounds] : best) {
    std::set<int> previous;
    for (const auto& [round, c] : rounds) {
      std::set<int> experts;
      PlanLayers plan = plan_layers(c->plan_json);  // kept alive: the loop walks its JSON
      for (const Json& e : plan.layers.begin()->second["experts"]) experts.insert(e.get<int>());
      int added = -1;
      for (int e : experts) {
        if (!previous.count(e)) added = e;
      }
      out[layer].push_back({int(round), added, best_value.at(layer).at(round), c->id});
      previous = experts;
    }
  }
  return out;
}

ChartSpec expert_order_chart(const db::SweepSnapshot& sweep) {
  std::string metric = "objective";
  auto orders = expert_orders(sweep, &metric);
  ChartSpec spec;
  spec.title = "Greedy expert selection, per MoE layer";
  spec.x.label = "round (experts kept)";
  spec.x.integer = true;
  spec.y.label = metric + " of the round's best candidate";
  spec.empty_message = "no expert selection in this sweep";
  int style = 0;
  for (const auto& [layer, rounds] : orders) {
    ChartSeries series;
    series.name = "layer " + std::to_string(layer);
    series.style = style++;
    for (const ExpertRound& r : rounds) {
      ChartPoint p;
      p.x = r.round, p.y = r.value, p.candidate = r.candidate;
      p.title = "layer " + std::to_string(layer) + ", round " + std::to_string(r.round) + ": adds expert " +
                std::to_string(r.added_expert) + ", " + metric + " = " + format_number(r.value);
      series.points.push_back(p);
    }
    spec.series.push_back(std::move(series));
  }
  spec.height = std::max(420, 60 + 18 * int(spec.series.size()));
  return spec;
}

std::map<std::string, std::vector<LayerStep>> layer_orders(const db::SweepSnapshot& sweep, std::string* metric) {
  std::map<std::string, std::map<int, LayerStep>> best;
  for (const db::SnapshotCandidate& c : sweep.candidates) {
    bool layer_stage = c.stage.rfind("layer_select", 0) == 0 || c.stage == "drop_select" || c.stage == "blockdrop_select";
    if (!layer_stage || c.state != CandidateState::kDone || c.stage.find("_screen") != std::string::npos) continue;
    for (const auto& [name, value] : c.metrics) {
      if (!ends_with(name, "_model")) continue;
      if (metric) *metric = name;
      PlanLayers plan = plan_layers(c.plan_json);
      int step = int(plan.layers.size());
      auto it = best[c.stage].find(step);
      if (it == best[c.stage].end() || value < it->second.value) {
        LayerStep s{step, {}, value, c.id};
        for (const auto& [layer, op] : plan.layers) s.layers.push_back(layer);
        best[c.stage][step] = s;
      }
    }
  }
  std::map<std::string, std::vector<LayerStep>> out;
  for (auto& [stage, steps] : best) {
    for (auto& [step, s] : steps) out[stage].push_back(s);
  }
  return out;
}

HeatmapSpec router_heatmap(const db::SweepSnapshot& sweep) {
  HeatmapSpec spec;
  spec.title = "Router statistics: each expert's share of its layer's tokens";
  spec.row_label = "MoE layer";
  spec.column_label = "routed expert";
  std::map<int, std::map<int, std::pair<double, double>>> by_layer;  // layer -> expert -> (tokens, weight)
  int experts = 0;
  for (const ExpertRouting& r : sweep.routing) {
    if (r.expert < 0) continue;
    by_layer[r.layer][r.expert] = {r.tokens, r.average_weight};
    experts = std::max(experts, r.expert + 1);
  }
  for (int e = 0; e < experts; ++e) spec.columns.push_back(std::to_string(e));
  double max_share = 0;
  std::vector<std::vector<double>> shares;
  for (const auto& [layer, row] : by_layer) {
    double total = 0;
    for (const auto& [e, tw] : row) total += tw.first;
    std::vector<double> cells(static_cast<size_t>(experts), NAN);
    std::vector<std::string> titles(static_cast<size_t>(experts));
    for (const auto& [e, tw] : row) {
      cells[size_t(e)] = total > 0 ? tw.first / total : 0;
      max_share = std::max(max_share, cells[size_t(e)]);
      titles[size_t(e)] = "layer " + std::to_string(layer) + ", expert " + std::to_string(e) + ": " +
                          format_number(tw.first) + " tokens (" + format_number(100 * cells[size_t(e)], 3) +
                          "%), average gate weight " + format_number(tw.second, 4);
    }
    spec.rows.push_back(std::to_string(layer));
    shares.push_back(cells);
    spec.cell_titles.push_back(titles);
  }
  // Darkest at the busiest expert of the whole model.
  for (auto& row : shares) {
    for (double& v : row) {
      if (std::isfinite(v) && max_share > 0) v /= max_share;
    }
  }
  spec.cells = shares;
  return spec;
}

ChartSpec finetune_chart(const std::vector<db::SweepSnapshot>& sweeps) {
  ChartSpec spec;
  spec.title = "Fine-tuning loss per fine-tuned candidate";
  spec.x.label = "step";
  spec.y.label = "loss (nats per target token)";
  spec.empty_message = "no fine-tuning steps recorded";
  int style = 0;
  for (const db::SweepSnapshot& s : sweeps) {
    for (const auto& [candidate, steps] : s.finetune) {
      const db::SnapshotCandidate* c = s.find(candidate);
      std::string name = (c ? c->method + (c->budget.empty() ? "" : " " + c->budget) : "candidate") + " #" + std::to_string(candidate);
      if (sweeps.size() > 1) name += " \u00b7 " + s.name;
      // Each step's loss is one batch's: noisy. The raw steps are drawn as unjoined markers and a
      // smoothed curve (the mean of a centred window of about a tenth of the run) as the line.
      ChartSeries raw, smooth;
      raw.name = name + " (steps)";
      smooth.name = name + " (smoothed)";
      raw.style = smooth.style = style++;
      raw.joined = false;
      std::vector<const db::FinetuneStep*> finite;
      for (const db::FinetuneStep& step : steps) {
        if (std::isfinite(step.loss)) finite.push_back(&step);
      }
      const int64_t half = std::max<int64_t>(1, int64_t(finite.size()) / 20);
      for (size_t i = 0; i < finite.size(); ++i) {
        const db::FinetuneStep& step = *finite[i];
        ChartPoint p;
        p.x = double(step.step), p.y = step.loss, p.candidate = candidate;
        p.title = "step " + std::to_string(step.step) + ": loss " + format_number(step.loss, 5) + ", lr " +
                  format_number(step.lr, 3) + ", " + std::to_string(step.tokens) + " tokens";
        raw.points.push_back(p);
        const size_t from = i > size_t(half) ? i - size_t(half) : 0, to = std::min(finite.size(), i + size_t(half) + 1);
        double sum = 0;
        for (size_t k = from; k < to; ++k) sum += finite[k]->loss;
        ChartPoint m = p;
        m.y = sum / double(to - from);
        m.title = "step " + std::to_string(step.step) + ": mean loss of steps " + std::to_string(finite[from]->step) + "-" +
                  std::to_string(finite[to - 1]->step) + " " + format_number(m.y, 5);
        smooth.points.push_back(m);
      }
      spec.series.push_back(std::move(raw));
      spec.series.push_back(std::move(smooth));
      // The held-out losses (cdmoe-train --eval-data), one joined series per held-out text, in a
      // style of its own: what generalises, beside what was fitted.
      auto held_out = s.held_out.find(candidate);
      if (held_out == s.held_out.end()) continue;
      std::map<std::string, ChartSeries> by_text;
      for (const HeldOutLoss& h : held_out->second) {
        if (!std::isfinite(h.loss)) continue;
        ChartPoint p;
        p.x = double(h.after_steps), p.y = h.loss, p.candidate = candidate;
        p.title = "after " + std::to_string(h.after_steps) + " steps: held-out loss " + format_number(h.loss, 5) + " (" +
                  std::to_string(h.tokens) + " tokens of text " + h.data_hash.substr(0, 12) + ")";
        by_text[h.data_hash].points.push_back(p);
      }
      for (auto& [hash, series] : by_text) {
        series.name = name + " (held-out" + (by_text.size() > 1 ? " " + hash.substr(0, 8) : std::string()) + ")";
        series.style = style++;
        spec.series.push_back(std::move(series));
      }
    }
  }
  return spec;
}

}  // namespace cdmoe::report
