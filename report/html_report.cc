#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "report/markup.h"
#include "report/sweep_figures.h"

namespace cdmoe::report {
namespace {

// The page's own style sheet: a constant, the only unescaped text of the page.
constexpr const char* kStyle = R"css(
body { font-family: sans-serif; margin: 24px auto; max-width: 1400px; color: #222; line-height: 1.4; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; }
.banner { background: #fff4e0; border: 1px solid #e69f00; padding: 8px 12px; margin: 8px 0; }
.note { color: #555; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: monospace; font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-all; max-width: 900px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 13px; }
dt { font-weight: bold; } dd { margin: 0; word-break: break-all; }
svg .point:hover path { stroke: #000; stroke-width: 2; }
@media print { .figures { display: block; } }
)css";

constexpr const char* kFullStage = "full_eval";

struct Counts {
  int64_t done = 0, total = 0, full_done = 0;
};

Counts count(const db::SweepSnapshot& s) {
  Counts c;
  for (const db::SnapshotCandidate& candidate : s.candidates) {
    ++c.total;
    if (candidate.state != CandidateState::kDone) continue;
    ++c.done;
    if (candidate.stage == kFullStage) ++c.full_done;
  }
  return c;
}

std::string joined(const std::vector<db::SweepSnapshot>& sweeps) {
  std::string names;
  for (const db::SweepSnapshot& s : sweeps) names += (names.empty() ? "" : ", ") + s.name;
  return names;
}

Element figure(Element svg) {
  Element f("figure");
  f.attr("style", "margin:0");
  f.add(std::move(svg));
  return f;
}

void status_section(Element& body, const std::vector<db::SweepSnapshot>& sweeps) {
  for (const db::SweepSnapshot& s : sweeps) {
    Counts c = count(s);
    Element& line = body.child("p");
    line.text("Sweep " + s.name + ": " + s.state + ", " + std::to_string(c.done) + " of " + std::to_string(c.total) +
              " candidates DONE, " + std::to_string(c.full_done) + " full evaluations; strategy " + s.strategy + ".");
    if (!s.finished()) {
      body.child("div").attr("class", "banner unfinished").text(
          "Sweep " + s.name + " is " + s.state + ", not finished: this page shows what the database held when it was "
          "made. Run cdmoe-report again for newer results" +
          std::string(s.state == "PREEMPTED" ? "; run the same cdmoe-sweep command to resume it." : "."));
    }
    if (c.full_done == 0) {
      body.child("div").attr("class", "banner no-full-eval").text(
          "Sweep " + s.name + " has no full evaluations yet: the accuracy, memory, speed and budget figures fill in once "
          "its budget points (and the original model) are evaluated in full.");
    }
  }
}

void accuracy_section(Element& body, const std::vector<db::SweepSnapshot>& sweeps, const std::map<std::string, int>& styles) {
  body.child("h2").text("Accuracy against memory and speed");
  std::string accuracy = sweeps.front().accuracy_axis;
  body.child("p").attr("class", "note").text(
      "One series per method, its points joined from the fewest changed layers to the most. Accuracy is the sweep's "
      "Pareto accuracy axis (" + accuracy + ") with its standard error; ringed points are on the Pareto front of "
      "accuracy, memory and speed. Hover a point for its candidate, budget and plan.");
  Element& row = body.child("div");
  row.attr("class", "figures");
  row.add(figure(render_chart(metric_chart(sweeps, styles, "param_ratio", accuracy, true))));
  row.add(figure(render_chart(metric_chart(sweeps, styles, "speedup", accuracy, true))));
}

void budget_section(Element& body, const std::vector<db::SweepSnapshot>& sweeps, const std::map<std::string, int>& styles) {
  body.child("h2").text("Budget curves");
  body.child("p").attr("class", "note").text(
      "Held-out perplexity and the divergence from the original model against the number of layers each plan changes.");
  Element& row = body.child("div");
  row.attr("class", "figures");
  row.add(figure(render_chart(metric_chart(sweeps, styles, kCondensedLayers, "perplexity", false))));
  row.add(figure(render_chart(metric_chart(sweeps, styles, kCondensedLayers, objective_metric(sweeps.front()), false))));
}

// A table of class `css_class` under `parent` with one header row; rows are added to it.
Element& table_with_header(Element& parent, const char* css_class, const std::vector<std::string>& columns) {
  Element& table = parent.child("table");
  table.attr("class", css_class);
  Element& head = table.child("tr");
  for (const std::string& column : columns) head.child("th").text(column);
  return table;
}

void search_section(Element& body, const db::SweepSnapshot& s) {
  body.child("h3").text("Sweep " + s.name);
  std::string expert_metric = "objective";
  auto orders = expert_orders(s, &expert_metric);
  if (!orders.empty()) {
    body.add(figure(render_chart(expert_order_chart(s))));
    Element& table = table_with_header(body, "expert-order", {"MoE layer", "experts in the order greedy selection added "
                                                                          "them (" + expert_metric + " after each round)"});
    for (const auto& [layer, rounds] : orders) {
      Element& tr = table.child("tr");
      tr.child("td").attr("class", "number").text(std::to_string(layer));
      std::string order;
      for (const ExpertRound& r : rounds) {
        order += (order.empty() ? "" : ", ") + std::to_string(r.added_expert) + " (" + format_number(r.value, 4) + ")";
      }
      tr.child("td").text(order);
    }
  } else {
    body.child("p").attr("class", "note").text("No expert selection in this sweep.");
  }
  std::string layer_metric = "objective";
  auto layer_steps = layer_orders(s, &layer_metric);
  if (!layer_steps.empty()) {
    Element& table = table_with_header(body, "layer-order", {"stage", "layers changed at each step t = 1, 2, ... (" +
                                                                          layer_metric + " of the step's best plan)"});
    for (const auto& [stage, steps] : layer_steps) {
      Element& tr = table.child("tr");
      tr.child("td").text(stage);
      std::string text;
      for (const LayerStep& step : steps) {
        std::string layers;
        for (int l : step.layers) layers += (layers.empty() ? "" : " ") + std::to_string(l);
        text += (text.empty() ? "" : "; ") + std::string("t=") + std::to_string(step.step) + ": {" + layers + "} (" +
                format_number(step.value, 4) + ")";
      }
      tr.child("td").text(text);
    }
  }
  HeatmapSpec heatmap = router_heatmap(s);
  if (!heatmap.rows.empty()) body.add(figure(render_heatmap(heatmap)));
  else body.child("p").attr("class", "note").text("No router statistics stored for this sweep yet.");
}

// A path as one shell word: quoted unless it is made of characters a shell leaves alone.
std::string shell_word(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") ==
                           std::string::npos) {
    return text;
  }
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void pareto_section(Element& body, const std::vector<db::SweepSnapshot>& sweeps, const std::string& database) {
  body.child("h2").text("The Pareto front");
  body.child("p").attr("class", "note").text(
      "Each row's export command writes that candidate (a fine-tuned one with its trained tensors) as a stock "
      "transformers checkpoint where its plan allows, else in cdmoe's own form (README \"Shipping a result\").");
  Element& table = table_with_header(body, "pareto", {"sweep", "candidate", "method", "budget", "accuracy", "param_ratio",
                                                      "speedup [95% interval]", "plan", "export"});
  size_t rows = 0;
  for (const db::SweepSnapshot& s : sweeps) {
    std::vector<const db::SnapshotCandidate*> front;
    for (int64_t id : s.pareto_ids) {
      if (const db::SnapshotCandidate* c = s.find(id)) front.push_back(c);
    }
    auto metric = [&](const db::SnapshotCandidate* c, const std::string& name) {
      auto it = c->metrics.find(name);
      return it == c->metrics.end() ? NAN : it->second;
    };
    std::sort(front.begin(), front.end(), [&](auto* a, auto* b) { return metric(a, s.accuracy_axis) > metric(b, s.accuracy_axis); });
    for (const db::SnapshotCandidate* c : front) {
      Element& tr = table.child("tr");
      tr.child("td").text(s.name);
      tr.child("td").attr("class", "number").text(std::to_string(c->id));
      tr.child("td").text(c->method);
      tr.child("td").text(c->budget);
      for (const std::string& name : {s.accuracy_axis, std::string("param_ratio")}) {
        tr.child("td").attr("class", "number").text(format_number(metric(c, name), 5));
      }
      // The speed with its 95% interval where one was measured (ties inside it: ARCHITECTURE.md §5).
      std::string speed = format_number(metric(c, s.speed_axis), 4);
      double low = metric(c, s.speed_axis + "_ci_low"), high = metric(c, s.speed_axis + "_ci_high");
      if (std::isfinite(low) && std::isfinite(high)) speed += " [" + format_number(low, 3) + ", " + format_number(high, 3) + "]";
      tr.child("td").attr("class", "number").text(speed);
      Element& details = tr.child("td").child("details");
      details.child("summary").text(c->plan_json == "{\"layers\":{}}" ? "original" : "plan");
      details.child("pre").text(c->plan_json);
      tr.child("td").child("code").attr("class", "export").text(
          "cdmoe-export --model " + shell_word(s.model_path) + " --db " + shell_word(database) + " --candidate " +
          std::to_string(c->id) + " --out " + shell_word(s.name + "-" + std::to_string(c->id) + "-" + c->method));
      ++rows;
    }
  }
  if (rows == 0) body.child("p").attr("class", "note").text("No candidate carries all three Pareto metrics yet.");
}

void provenance_section(Element& body, const db::SweepSnapshot& s) {
  body.child("h3").text("Sweep " + s.name);
  Element& dl = body.child("dl");
  auto item = [&](const std::string& key, const std::string& value) {
    dl.child("dt").text(key);
    dl.child("dd").text(value);
  };
  item("state", s.state);
  item("strategy", s.strategy);
  item("started", s.started_at);
  item("finished", s.finished_at.empty() ? "(not yet)" : s.finished_at);
  item("git commit of cdmoe-sweep", s.git_commit);
  item("host", s.host);
  item("model", s.model_path);
  item("model sha256", s.model_hash);
  item("data sha256", s.data_hashes);
  item("seed", std::to_string(s.seed));
  item("Pareto axes", s.accuracy_axis + " (up), " + s.memory_axis + " (down), " + s.speed_axis + " (up)");
  Element& details = body.child("details");
  details.child("summary").text("configuration");
  Json config = Json::parse(s.config_json, nullptr, false);
  details.child("pre").text(config.is_discarded() ? s.config_json : config.dump(2));
}

}  // namespace

std::string render_html_report(const std::vector<db::SweepSnapshot>& sweeps, const PageInfo& page) {
  std::map<std::string, int> styles = method_styles(sweeps);
  Element html("html");
  html.attr("lang", "en");
  Element& head = html.child("head");
  head.child("meta").attr("charset", "utf-8");
  head.child("meta").attr("name", "viewport").attr("content", "width=device-width, initial-scale=1");
  head.child("title").text("cdmoe report: " + joined(sweeps));
  head.child("style").trusted_text(kStyle);
  Element& body = html.child("body");
  body.child("h1").text("cdmoe sweep report: " + joined(sweeps));
  status_section(body, sweeps);
  accuracy_section(body, sweeps, styles);
  budget_section(body, sweeps, styles);
  body.child("h2").text("The search");
  for (const db::SweepSnapshot& s : sweeps) search_section(body, s);
  body.child("h2").text("Fine-tuning");
  bool any_finetune = std::any_of(sweeps.begin(), sweeps.end(), [](const db::SweepSnapshot& s) { return !s.finetune.empty(); });
  if (any_finetune) body.add(figure(render_chart(finetune_chart(sweeps))));
  else body.child("p").attr("class", "note").text("No fine-tuning steps recorded in these sweeps.");
  pareto_section(body, sweeps, page.database);
  body.child("h2").text("Provenance");
  for (const db::SweepSnapshot& s : sweeps) provenance_section(body, s);
  body.child("p").attr("class", "note").text("Made by " + page.generator + " from " + page.database + " at " +
                                            page.generated_at + ".");
  std::string out = "<!DOCTYPE html>\n";
  html.write(out);
  out += "\n";
  return out;
}

std::string render_metric_svg(const std::vector<db::SweepSnapshot>& sweeps, const std::string& x, const std::string& y) {
  // A metric no sweep recorded would draw an empty chart: refused, listing the ones there are.
  for (const auto& [axis, metric] : {std::pair{"--x", x}, std::pair{"--y", y}}) {
    bool known = false;
    std::string names;
    std::set<std::string> all = {kCondensedLayers};  // the plans' own count, not a metric row
    for (const db::SweepSnapshot& sweep : sweeps) {
      for (const auto& [name, unit] : sweep.units) all.insert(name);
    }
    for (const std::string& name : all) names += (names.empty() ? "" : ", ") + name, known = known || name == metric;
    if (!known) throw_bad_input(std::string(axis) + " \"" + metric + "\" is not a metric of these sweeps (metrics: " + names + ")");
  }
  Element svg = render_chart(metric_chart(sweeps, method_styles(sweeps), x, y, y == sweeps.front().accuracy_axis));
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg.write(out);
  out += "\n";
  return out;
}

}  // namespace cdmoe::report
