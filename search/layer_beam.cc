#include "search/layer_beam.h"

#include <algorithm>
#include <numeric>
#include <set>

namespace cdmoe::search {

LayerBeamSearch::LayerBeamSearch(LayerBeamOptions options, EvaluationBook& book)
    : options_(std::move(options)), book_(book) {
  options_.steps = std::min<int>(options_.steps, int(options_.layers.size()));
}

Plan LayerBeamSearch::plan_for(const std::vector<int>& layers) const {
  Plan plan;
  for (int layer : layers) plan.set_layer(layer, options_.layer_plan(layer));
  return plan;
}

void LayerBeamSearch::start() {
  if (started_) return;
  started_ = true;
  beam_ = {CurvePoint{}};  // step 1 extends the original model
  if (!finished()) open_step();
}

void LayerBeamSearch::open_step() {
  offered_.clear();
  std::set<std::vector<int>> seen;  // the same layer set reached from two beam entries is offered once
  std::vector<Candidate> candidates;
  for (const CurvePoint& entry : beam_) {
    std::optional<CandidateRef> parent;
    if (!entry.layers.empty()) parent = CandidateRef{options_.stage, entry.plan};
    for (int layer : options_.layers) {
      if (std::find(entry.layers.begin(), entry.layers.end(), layer) != entry.layers.end()) continue;
      std::vector<int> layers = entry.layers;
      layers.push_back(layer);
      std::vector<int> sorted = layers;
      std::sort(sorted.begin(), sorted.end());
      if (!seen.insert(sorted).second) continue;
      CurvePoint point{layers, plan_for(layers), 0};
      candidates.push_back(Candidate{options_.stage, options_.method, point.plan, options_.objective, parent,
                                     "layers:" + std::to_string(layers.size())});
      offered_.push_back(std::move(point));
    }
  }
  round_ = std::make_unique<DecisionRound>(book_, std::move(candidates), options_.screening);
}

bool LayerBeamSearch::advance() {
  if (!started_) return false;
  bool moved = false;
  while (!finished() && (round_->advance() || round_->complete())) {
    moved = true;
    if (!round_->complete()) continue;
    const std::vector<double>& values = round_->values();
    std::vector<size_t> order(offered_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
    beam_.clear();
    for (size_t i = 0; i < order.size() && int(beam_.size()) < options_.beam_width; ++i) {
      CurvePoint point = offered_[order[i]];
      point.value = values[order[i]];
      beam_.push_back(std::move(point));
    }
    curve_.push_back(beam_.front());
    if (!finished()) open_step();
  }
  return moved;
}

}  // namespace cdmoe::search
