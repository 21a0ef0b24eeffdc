#include "search/greedy_experts.h"

#include <algorithm>

namespace cdmoe::search {

GreedyExpertSearch::GreedyExpertSearch(GreedyExpertOptions options, EvaluationBook& book)
    : options_(std::move(options)), book_(book) {
  if (!finished()) open_round();
}

std::vector<int> GreedyExpertSearch::experts_after(int rounds) const {
  std::vector<int> experts;
  if (options_.forward) {
    experts.assign(order_.begin(), order_.begin() + rounds);
  } else {
    for (int e = 0; e < options_.num_experts; ++e) {
      if (std::find(order_.begin(), order_.begin() + rounds, e) == order_.begin() + rounds) experts.push_back(e);
    }
  }
  std::sort(experts.begin(), experts.end());
  return experts;
}

Plan GreedyExpertSearch::plan_for(const std::vector<int>& experts) const {
  Plan plan;
  plan.set_layer(options_.layer, LayerPlan{options_.op, experts, {}, {}});
  return plan;
}

void GreedyExpertSearch::open_round() {
  int done = rounds_done();
  std::vector<int> current = experts_after(done);
  std::optional<CandidateRef> parent;
  if (done > 0) parent = CandidateRef{options_.stage, plan_for(current)};
  options_now_.clear();
  std::vector<Candidate> candidates;
  for (int e = 0; e < options_.num_experts; ++e) {
    bool chosen = std::find(order_.begin(), order_.end(), e) != order_.end();
    if (chosen) continue;
    std::vector<int> experts = current;
    if (options_.forward) {
      experts.push_back(e);
    } else {
      experts.erase(std::find(experts.begin(), experts.end(), e));
    }
    options_now_.push_back(e);
    candidates.push_back(Candidate{options_.stage, options_.method, plan_for(experts), options_.objective, parent, ""});
  }
  round_ = std::make_unique<DecisionRound>(book_, std::move(candidates), options_.screening);
}

bool GreedyExpertSearch::advance() {
  bool moved = false;
  while (!finished() && (round_->advance() || round_->complete())) {
    moved = true;
    if (!round_->complete()) continue;
    size_t winner = round_->winner();
    order_.push_back(options_now_[winner]);
    winner_values_.push_back(round_->values()[winner]);
    if (!finished()) open_round();
  }
  return moved;
}

}  // namespace cdmoe::search
