// Greedy expert selection for one MoE layer (ARCHITECTURE.md §2). Forward (CD-MoE): round r adds to
// the chosen set the expert whose condensed layer diverges least. Backward (the pruning
// baseline): round r removes from the kept set the expert whose removal hurts least.
// Each round's candidates wait in the evaluation book; advance() steps through finished rounds.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "search/evaluation_book.h"

namespace cdmoe::search {

struct GreedyExpertOptions {
  int layer = 0;
  int num_experts = 0;  // routed experts of the layer
  int rounds = 0;       // experts to add (forward) or remove (backward)
  bool forward = true;
  LayerOp op = LayerOp::kCondense;  // the op candidates apply to the layer
  std::string stage;
  std::string method;
  Objective objective;
  Screening screening;
};

class GreedyExpertSearch {
 public:
  GreedyExpertSearch(GreedyExpertOptions options, EvaluationBook& book);
  // Steps through every finished round and opens the next; true when anything moved.
  bool advance();
  bool finished() const { return int(order_.size()) == options_.rounds; }
  int rounds_done() const { return int(order_.size()); }
  // Experts in the order chosen: added (forward) or removed (backward).
  const std::vector<int>& order() const { return order_; }
  // The layer's experts after `rounds` rounds, ascending: the first `rounds` added (forward)
  // or all but the first `rounds` removed (backward). Requires rounds <= rounds_done().
  std::vector<int> experts_after(int rounds) const;
  // The objective value of each round's winner.
  const std::vector<double>& winner_values() const { return winner_values_; }

 private:
  Plan plan_for(const std::vector<int>& experts) const;
  void open_round();

  GreedyExpertOptions options_;
  EvaluationBook& book_;
  std::vector<int> order_;
  std::vector<double> winner_values_;
  std::vector<int> options_now_;  // the expert each candidate of the open round adds/removes
  std::unique_ptr<DecisionRound> round_;
};

}  // namespace cdmoe::search
