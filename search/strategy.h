// Strategy: the brain of a sweep (ARCHITECTURE.md §4). It turns results into the next candidates.
// Contract:
// - next() returns the candidates runnable now that it has not returned before, in a
//   deterministic order; an empty answer while !finished() means "wait for results".
// - record() takes a result by (stage, plan): any result of a candidate it ever returned,
//   in any order, also results replayed from a database on resume (so a resumed strategy
//   that is fed the stored results continues exactly where the first one stopped).
// - Deterministic: the same config, seed and results give the same candidates and plans.
// - Never offers the same (objective, plan) twice: a candidate whose evaluation is known or
//   in flight (from another stage) reuses that result.
// Not thread-safe: the coordinator's thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/messages.h"
#include "core/model_shape.h"
#include "search/budget.h"
#include "search/candidate.h"

namespace cdmoe::search {

struct SearchConfig {
  std::vector<int> experts_kept = {0, 6};  // k per condensed layer: 0 is CD-MoE-S, >0 CD-MoE-SR
  Objective expert_objective{"js-hidden", "layer", 1.0};  // expert (and prune) selection
  Objective layer_objective{"js-logits", "model", 1.0};   // layer selection
  int beam_width = 1;                   // layer selection keeps this many best plans per step
  std::vector<Budget> budgets;          // the budget points wanted (parse_budgets)
  uint64_t seed = 0;                    // random choices (the `random` strategy)
  double screen_fraction = 0;           // > 0: successive halving inside greedy rounds (default off)
  double screen_margin = 0.05;          // keep candidates within this relative margin of the best screen
  std::string plans_file;               // the `plans` strategy's JSONL file
  CostModel cost_model;                 // for speed budgets
};

struct StageProgress {
  std::string stage;
  int64_t done = 0;
  int64_t total = 0;  // expected candidates in the stage (an estimate with screening on)
  double best = 0;    // lowest objective value recorded so far (NaN when none)
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::vector<Candidate> next() = 0;
  virtual void record(const std::string& stage, const Plan& plan, const std::vector<Metric>& metrics) = 0;
  // A candidate that failed for good: it never wins a round.
  virtual void record_failure(const std::string& stage, const Plan& plan) = 0;
  virtual bool finished() const = 0;
  // The plans to evaluate in full; complete once finished().
  virtual std::vector<BudgetPoint> budget_points() const = 0;
  virtual std::vector<StageProgress> progress() const = 0;
};

// Builds a registered strategy (search/registry.cc: cdmoe, drop, blockdrop, prune, random, plans;
// several comma-separated run side by side). Checks the config against
// the shape (k larger than the routed experts, budgets that cannot be met, ...): bad input.
std::unique_ptr<Strategy> make_strategy(const std::string& name, const ModelShape& shape, const SearchConfig& config);
std::string strategy_names();

// Bad input naming `what` unless `method` is a method name results are recorded under:
// lower_snake_case, at most 64 characters (plans files and cdmoe-import-reference's --method).
void check_method_name(const std::string& method, const std::string& what);

}  // namespace cdmoe::search
