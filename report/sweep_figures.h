// The figures of a sweep report, each built from database snapshots alone (db/sweep_snapshot.h)
// as a chart or table specification: the accuracy/memory/speed scatter of the full evaluations
// by method, budget curves, the greedy search's expert and layer orders, router statistics
// and fine-tuning loss curves. Series of several sweeps are drawn together, named
// "method · sweep". Torch-free; pure functions of the snapshots.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "db/sweep_snapshot.h"
#include "report/chart.h"

namespace cdmoe::report {

// A stable style per series name (method), shared by every chart of a page: "original" first.
std::map<std::string, int> method_styles(const std::vector<db::SweepSnapshot>& sweeps);

// Derived x values a metric chart accepts besides metric names.
inline constexpr const char* kCondensedLayers = "condensed_layers";  // layers the plan changes

// Full evaluations (DONE) of every sweep: the budget points and the original (stage full_eval),
// and the fine-tuned candidates (stage finetune, and cdmoe-train's stage train, named
// "<method> (cdmoe-train)"), one series per method, its points in budget order (fewer changed
// layers first), each fine-tuned point joined to its parent's by a link. x and y by metric name
// (or kCondensedLayers). Candidates without either value are left out. y gets error bars from
// "<y>_stderr" (for task_acc_mean: the tasks' acc standard errors combined), x from
// "<x>_ci_low/_ci_high"; candidates on their sweep's Pareto front are highlighted when
// `pareto_ring` is set.
ChartSpec metric_chart(const std::vector<db::SweepSnapshot>& sweeps, const std::map<std::string, int>& styles,
                       const std::string& x, const std::string& y, bool pareto_ring);

// A human axis label for a metric: what it is and its unit.
std::string metric_label(const std::string& metric, const std::vector<db::SweepSnapshot>& sweeps);

// The metric the sweep's layer selection minimised ("js_logits_model" by default), from its config.
std::string objective_metric(const db::SweepSnapshot& sweep);

// Greedy expert selection, per MoE layer: the best candidate of each round (its objective value
// and the expert it added).
struct ExpertRound {
  int round = 0;
  int added_expert = -1;
  double value = 0;
  int64_t candidate = -1;
};
std::map<int, std::vector<ExpertRound>> expert_orders(const db::SweepSnapshot& sweep, std::string* metric);
ChartSpec expert_order_chart(const db::SweepSnapshot& sweep);

// Greedy layer selection per stage (layer_select_k0, ..., drop_select): the best candidate at
// each step t and the layers it changes.
struct LayerStep {
  int step = 0;
  std::vector<int> layers;
  double value = 0;
  int64_t candidate = -1;
};
std::map<std::string, std::vector<LayerStep>> layer_orders(const db::SweepSnapshot& sweep, std::string* metric);

// Router statistics: each routed expert's share of its layer's routed tokens.
HeatmapSpec router_heatmap(const db::SweepSnapshot& sweep);

// Loss against step per fine-tuned candidate: its steps as unjoined markers ("... (steps)"),
// their centred moving mean (a window of about a tenth of the run) as a line ("... (smoothed)"),
// and its held-out losses when cdmoe-train recorded them (--eval-data) as a line of their own
// ("... (held-out)", per held-out text), at the number of steps done when measured.
ChartSpec finetune_chart(const std::vector<db::SweepSnapshot>& sweeps);

}  // namespace cdmoe::report
