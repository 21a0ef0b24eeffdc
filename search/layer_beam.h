// Greedy layer selection with a beam (ARCHITECTURE.md §2): step t offers every remaining layer
// changed on top of each of the b best plans of step t-1 and keeps the b best of step t.
// The best plan of each step is the budget curve (1, 2, ... layers). What "changing a layer"
// means (condense with its chosen experts, drop) is the caller's `layer_plan`.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "search/evaluation_book.h"

namespace cdmoe::search {

struct LayerBeamOptions {
  std::vector<int> layers;  // the layers that may be chosen, ascending
  int steps = 0;            // curve length wanted (<= layers.size())
  int beam_width = 1;
  std::string stage;
  std::string method;
  Objective objective;
  Screening screening;
  std::function<LayerPlan(int layer)> layer_plan;
};

struct CurvePoint {
  std::vector<int> layers;  // in the order the search added them
  Plan plan;
  double value = 0;
};

class LayerBeamSearch {
 public:
  LayerBeamSearch(LayerBeamOptions options, EvaluationBook& book);
  // Call once the layer_plan function can answer for every layer.
  void start();
  bool started() const { return started_; }
  bool advance();
  bool finished() const { return started_ && int(curve_.size()) == options_.steps; }
  const std::vector<CurvePoint>& curve() const { return curve_; }

 private:
  Plan plan_for(const std::vector<int>& layers) const;
  void open_step();

  LayerBeamOptions options_;
  EvaluationBook& book_;
  bool started_ = false;
  std::vector<CurvePoint> beam_;
  std::vector<CurvePoint> curve_;
  std::vector<CurvePoint> offered_;  // the open step's candidates, in offer order
  std::unique_ptr<DecisionRound> round_;
};

}  // namespace cdmoe::search
