// The CD-MoE search (ARCHITECTURE.md §2): greedy expert selection in every MoE layer at once, then
// greedy (beam) layer selection for each k in experts_kept, whose curve gives the budget points.
#include <algorithm>
#include <map>
#include <memory>

#include "core/model_shape.h"
#include "search/book_strategy.h"
#include "search/greedy_experts.h"
#include "search/layer_beam.h"
#include "search/strategies.h"

namespace cdmoe::search {
namespace {

class CdmoeStrategy : public BookStrategy {
 public:
  CdmoeStrategy(const ModelShape& shape, const SearchConfig& config) : BookStrategy(config), config_(config) {
    check_experts_kept(shape, config.experts_kept);
    std::vector<int> ks = config.experts_kept;
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    std::vector<int> layers = shape.moe_layers();
    const int experts = int(shape.num_routed_experts);
    k_max_ = ks.back();

    // Budgets first: bad ones fail before any work is planned.
    std::map<int, int> steps;
    for (int k : ks) {
      auto plan_at = [&](int n) { return plan_changing_first_layers(shape, n, condensed_any(k)); };
      for (const Budget& budget : config.budgets) {
        int n = resolve_budget(budget, shape, int(layers.size()), plan_at, config.cost_model, condense_method(k));
        budget_steps_.push_back({k, budget.text, n});
        steps[k] = std::max(steps[k], n);
      }
    }

    if (k_max_ > 0) {
      int64_t expected = 0;
      for (int r = 0; r < k_max_; ++r) expected += (experts - r) * int64_t(layers.size());
      add_stage("expert_select", config.expert_objective, expected);
      for (int layer : layers) {
        GreedyExpertOptions options{layer, experts, k_max_, /*forward=*/true, LayerOp::kCondense, "expert_select",
                                    "cdmoe", config.expert_objective, screening_};
        expert_searches_.emplace(layer, std::make_unique<GreedyExpertSearch>(options, book_));
      }
    }
    for (int k : ks) {
      std::string stage = "layer_select_k" + std::to_string(k);
      int64_t expected = 0;
      for (int t = 0; t < steps[k]; ++t) expected += int64_t(layers.size()) - t;
      add_stage(stage, config.layer_objective, expected * config.beam_width);
      LayerBeamOptions options{layers, steps[k], config.beam_width, stage, condense_method(k),
                               config.layer_objective, screening_,
                               [this, k](int layer) { return condensed_layer(layer, k); }};
      layer_searches_.emplace(k, std::make_unique<LayerBeamSearch>(options, book_));
    }
  }

  bool finished() const override {
    for (const auto& [layer, search] : expert_searches_) {
      if (!search->finished()) return false;
    }
    for (const auto& [k, search] : layer_searches_) {
      if (!search->finished()) return false;
    }
    return true;
  }

  std::vector<BudgetPoint> budget_points() const override {
    std::vector<BudgetPoint> points;
    for (const BudgetStep& step : budget_steps_) {
      const auto& curve = layer_searches_.at(step.k)->curve();
      if (int(curve.size()) < step.layers) continue;  // not searched that far yet
      const CurvePoint& point = curve[size_t(step.layers - 1)];
      points.push_back(BudgetPoint{condense_method(step.k), step.budget, point.plan, point.value});
    }
    return points;
  }

 private:
  struct BudgetStep {
    int k;
    std::string budget;
    int layers;
  };

  LayerPlan condensed_layer(int layer, int k) const {
    std::vector<int> experts = k == 0 ? std::vector<int>{} : expert_searches_.at(layer)->experts_after(k);
    return LayerPlan{LayerOp::kCondense, experts, {}, {}};
  }

  bool experts_ready(int k) const {
    for (const auto& [layer, search] : expert_searches_) {
      if (search->rounds_done() < k) return false;
    }
    return true;
  }

  bool advance_all() override {
    bool moved = false;
    for (auto& [layer, search] : expert_searches_) moved = search->advance() || moved;
    for (auto& [k, search] : layer_searches_) {
      if (!search->started() && experts_ready(k)) {
        search->start();
        moved = true;
      }
      moved = search->advance() || moved;
    }
    return moved;
  }

  SearchConfig config_;
  int k_max_ = 0;
  std::map<int, std::unique_ptr<GreedyExpertSearch>> expert_searches_;  // by layer
  std::map<int, std::unique_ptr<LayerBeamSearch>> layer_searches_;      // by k
  std::vector<BudgetStep> budget_steps_;
};

}  // namespace

std::unique_ptr<Strategy> make_cdmoe_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<CdmoeStrategy>(shape, config);
}

}  // namespace cdmoe::search
