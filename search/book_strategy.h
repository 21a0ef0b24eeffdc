// Shared plumbing of the strategies that search through an EvaluationBook: stage names and
// their objectives, result bookkeeping, progress. Subclasses build their searches in the
// constructor and implement advance_all().
#pragma once

#include <map>
#include <string>
#include <vector>

#include "search/evaluation_book.h"
#include "search/strategy.h"

namespace cdmoe::search {

class BookStrategy : public Strategy {
 public:
  std::vector<Candidate> next() override;
  void record(const std::string& stage, const Plan& plan, const std::vector<Metric>& metrics) override;
  void record_failure(const std::string& stage, const Plan& plan) override;
  std::vector<StageProgress> progress() const override;

 protected:
  explicit BookStrategy(const SearchConfig& config) : screening_{config.screen_fraction, config.screen_margin} {}
  // Declares a stage (and its "_screen" twin when screening is on) with its expected size.
  void add_stage(const std::string& stage, const Objective& objective, int64_t expected);
  // Advances every search one notch; true when anything moved.
  virtual bool advance_all() = 0;

  EvaluationBook book_;
  Screening screening_;

 private:
  struct StageState {
    Objective objective;
    StageProgress progress;
  };
  StageState& stage_state(const std::string& stage);
  std::map<std::string, StageState> stages_;
  std::vector<std::string> stage_order_;
};

// Plans that change the first n MoE layers (for mapping budgets to curve points: every MoE
// layer of a family has the same size, so which n layers does not matter).
Plan plan_changing_first_layers(const ModelShape& shape, int n, const LayerPlan& change);

// Experts 0..count-1, and a condense op keeping k of them: stand-ins for budget mapping, where
// only how many experts a layer keeps matters.
std::vector<int> first_experts(int count);
LayerPlan condensed_any(int k);

// Validates experts_kept against the shape: bad input for k < 0 or k > routed experts.
void check_experts_kept(const ModelShape& shape, const std::vector<int>& experts_kept);
std::string condense_method(int k);  // cdmoe_s for 0, cdmoe_sr_k6 for 6

}  // namespace cdmoe::search
