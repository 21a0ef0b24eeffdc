#include "search/book_strategy.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/model_shape.h"

namespace cdmoe::search {

void BookStrategy::add_stage(const std::string& stage, const Objective& objective, int64_t expected) {
  bool screened = screening_.fraction > 0 && screening_.fraction < 1;
  StageState state{objective, StageProgress{stage, 0, expected, std::numeric_limits<double>::quiet_NaN()}};
  if (screened) {
    Objective screen = objective;
    screen.calib_fraction = screening_.fraction;
    stages_[stage + "_screen"] = StageState{screen, StageProgress{stage + "_screen", 0, expected, state.progress.best}};
    stage_order_.push_back(stage + "_screen");
    state.progress.total = 0;  // unknown until the screens decide; grows as candidates are offered
  }
  stages_[stage] = state;
  stage_order_.push_back(stage);
}

BookStrategy::StageState& BookStrategy::stage_state(const std::string& stage) {
  auto it = stages_.find(stage);
  if (it == stages_.end()) {
    std::string known;
    for (const std::string& name : stage_order_) known += (known.empty() ? "" : ", ") + name;
    throw_runtime("result for unknown stage \"" + stage + "\" (this search has: " + known + ")");
  }
  return it->second;
}

std::vector<Candidate> BookStrategy::next() {
  while (advance_all()) {
  }
  std::vector<Candidate> fresh = book_.take_new();
  bool screened = screening_.fraction > 0 && screening_.fraction < 1;
  if (screened) {
    for (const Candidate& candidate : fresh) {
      StageState& state = stage_state(candidate.stage);
      if (candidate.objective.calib_fraction == 1) ++state.progress.total;
    }
  }
  return fresh;
}

void BookStrategy::record(const std::string& stage, const Plan& plan, const std::vector<Metric>& metrics) {
  StageState& state = stage_state(stage);
  std::string name = state.objective.metric_name();
  for (const Metric& metric : metrics) {
    if (metric.name != name) continue;
    double value = std::isnan(metric.value) ? std::numeric_limits<double>::infinity() : metric.value;
    book_.record(state.objective, plan, value);
    ++state.progress.done;
    if (!(value >= state.progress.best)) state.progress.best = value;  // NaN best: first value wins
    return;
  }
  throw_runtime("result of a \"" + stage + "\" candidate lacks its objective metric \"" + name + "\"");
}

void BookStrategy::record_failure(const std::string& stage, const Plan& plan) {
  StageState& state = stage_state(stage);
  book_.record(state.objective, plan, std::numeric_limits<double>::infinity());
  ++state.progress.done;
}

std::vector<StageProgress> BookStrategy::progress() const {
  std::vector<StageProgress> all;
  for (const std::string& stage : stage_order_) all.push_back(stages_.at(stage).progress);
  return all;
}

Plan plan_changing_first_layers(const ModelShape& shape, int n, const LayerPlan& change) {
  Plan plan;
  std::vector<int> layers = shape.moe_layers();
  for (int i = 0; i < n && i < int(layers.size()); ++i) plan.set_layer(layers[size_t(i)], change);
  return plan;
}

std::vector<int> first_experts(int count) {
  std::vector<int> experts;
  for (int e = 0; e < count; ++e) experts.push_back(e);
  return experts;
}

LayerPlan condensed_any(int k) { return LayerPlan{LayerOp::kCondense, first_experts(k), {}, {}}; }

void check_experts_kept(const ModelShape& shape, const std::vector<int>& experts_kept) {
  if (experts_kept.empty()) throw_bad_input("--experts-kept: give at least one k (e.g. 0,6)");
  for (int k : experts_kept) {
    if (k < 0 || k > shape.num_routed_experts) {
      throw_bad_input("--experts-kept: k = " + std::to_string(k) + " is outside 0.." +
                      std::to_string(shape.num_routed_experts) + " (the model's routed experts per layer)");
    }
    if (k == 0 && shape.shared_intermediate_size == 0) {
      throw_bad_input("--experts-kept: k = 0 (CD-MoE-S) keeps only shared experts, and this " + shape.model_type +
                      " model has none: its condensed layer would be the drop baseline (give k >= 1)");
    }
  }
  if (shape.moe_layers().empty()) throw_bad_input("the model has no MoE layers to condense");
}

std::string condense_method(int k) { return k == 0 ? "cdmoe_s" : "cdmoe_sr_k" + std::to_string(k); }

}  // namespace cdmoe::search
