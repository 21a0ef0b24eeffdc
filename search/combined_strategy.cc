// Several strategies in one sweep ("cdmoe,drop,random": the method and its baselines), each
// with its own stages. Candidates come in the order of the list; a result goes back to the
// strategy that owns its stage.
#include <map>

#include "core/error.h"
#include "search/strategies.h"

namespace cdmoe::search {
namespace {

class CombinedStrategy : public Strategy {
 public:
  explicit CombinedStrategy(std::vector<std::unique_ptr<Strategy>> parts) : parts_(std::move(parts)) {}

  std::vector<Candidate> next() override {
    std::vector<Candidate> all;
    for (size_t i = 0; i < parts_.size(); ++i) {
      for (Candidate& c : parts_[i]->next()) {
        owner_[base_stage(c.stage)] = i;
        all.push_back(std::move(c));
      }
    }
    return all;
  }
  void record(const std::string& stage, const Plan& plan, const std::vector<Metric>& metrics) override {
    owner_of(stage).record(stage, plan, metrics);
  }
  void record_failure(const std::string& stage, const Plan& plan) override { owner_of(stage).record_failure(stage, plan); }
  bool finished() const override {
    for (const auto& part : parts_) {
      if (!part->finished()) return false;
    }
    return true;
  }
  std::vector<BudgetPoint> budget_points() const override {
    std::vector<BudgetPoint> points;
    for (const auto& part : parts_) {
      for (BudgetPoint& p : part->budget_points()) points.push_back(std::move(p));
    }
    return points;
  }
  std::vector<StageProgress> progress() const override {
    std::vector<StageProgress> stages;
    for (const auto& part : parts_) {
      for (StageProgress& s : part->progress()) stages.push_back(std::move(s));
    }
    return stages;
  }

 private:
  // Screening stages ("..._screen") belong to the strategy of their stage.
  static std::string base_stage(const std::string& stage) {
    const std::string suffix = "_screen";
    bool screen = stage.size() > suffix.size() && stage.compare(stage.size() - suffix.size(), suffix.size(), suffix) == 0;
    return screen ? stage.substr(0, stage.size() - suffix.size()) : stage;
  }
  Strategy& owner_of(const std::string& stage) {
    auto found = owner_.find(base_stage(stage));
    if (found == owner_.end()) throw_runtime("a result for stage \"" + stage + "\", which no strategy offered");
    return *parts_[found->second];
  }

  std::vector<std::unique_ptr<Strategy>> parts_;
  std::map<std::string, size_t> owner_;
};

}  // namespace

std::unique_ptr<Strategy> make_combined_strategy(std::vector<std::unique_ptr<Strategy>> parts) {
  return std::make_unique<CombinedStrategy>(std::move(parts));
}

}  // namespace cdmoe::search
