// The baselines users compare CD-MoE against (ARCHITECTURE.md §2): layer drop (greedy layer
// selection dropping MoE blocks), block drop (the same greedy selection removing whole decoder
// blocks, attention included: the paper's BlockDrop; candidates are the MoE layers, so
// layers:N means N blocks of the same layers drop and cdmoe change) and expert pruning (per layer, greedy backward elimination
// of experts with the router kept, NAEE-style; every MoE layer pruned to the same count).
#include <algorithm>
#include <memory>

#include "core/error.h"
#include "core/model_shape.h"
#include "search/book_strategy.h"
#include "search/greedy_experts.h"
#include "search/layer_beam.h"
#include "search/strategies.h"

namespace cdmoe::search {
namespace {

// Greedy layer selection applying one removal op (drop or drop_block) to the chosen layers.
class DropStrategy : public BookStrategy {
 public:
  DropStrategy(const ModelShape& shape, const SearchConfig& config, LayerOp op, const std::string& method)
      : BookStrategy(config), method_(method) {
    std::vector<int> layers = shape.moe_layers();
    if (layers.empty()) throw_bad_input("the model has no MoE layers to drop");
    auto plan_at = [&](int n) { return plan_changing_first_layers(shape, n, LayerPlan{op, {}, {}, {}}); };
    int steps = 0;
    for (const Budget& budget : config.budgets) {
      int n = resolve_budget(budget, shape, int(layers.size()), plan_at, config.cost_model, method);
      budget_steps_.emplace_back(budget.text, n);
      steps = std::max(steps, n);
    }
    int64_t expected = 0;
    for (int t = 0; t < steps; ++t) expected += int64_t(layers.size()) - t;
    add_stage(method + "_select", config.layer_objective, expected * config.beam_width);
    LayerBeamOptions options{layers, steps, config.beam_width, method + "_select", method, config.layer_objective,
                             screening_, [op](int) { return LayerPlan{op, {}, {}, {}}; }};
    search_ = std::make_unique<LayerBeamSearch>(options, book_);
    search_->start();
  }

  bool finished() const override { return search_->finished(); }

  std::vector<BudgetPoint> budget_points() const override {
    std::vector<BudgetPoint> points;
    for (const auto& [budget, n] : budget_steps_) {
      if (int(search_->curve().size()) < n) continue;
      const CurvePoint& point = search_->curve()[size_t(n - 1)];
      points.push_back(BudgetPoint{method_, budget, point.plan, point.value});
    }
    return points;
  }

 private:
  bool advance_all() override { return search_->advance(); }

  std::string method_;
  std::unique_ptr<LayerBeamSearch> search_;
  std::vector<std::pair<std::string, int>> budget_steps_;
};

class PruneStrategy : public BookStrategy {
 public:
  PruneStrategy(const ModelShape& shape, const SearchConfig& config) : BookStrategy(config) {
    std::vector<int> layers = shape.moe_layers();
    if (layers.empty()) throw_bad_input("the model has no MoE layers to prune");
    const int experts = int(shape.num_routed_experts);
    // Curve point n: every MoE layer keeps experts - n experts.
    auto plan_at = [&](int n) {
      return plan_changing_first_layers(shape, int(layers.size()), LayerPlan{LayerOp::kPrune, first_experts(experts - n), {}, {}});
    };
    int rounds = 0;
    for (const Budget& budget : config.budgets) {
      if (budget.kind == Budget::Kind::kLayers) {
        throw_bad_input("budget " + budget.text + ": the prune baseline prunes every MoE layer; give memory: or speed: budgets");
      }
      int n = resolve_budget(budget, shape, experts - 1, plan_at, config.cost_model, "prune");
      budget_steps_.emplace_back(budget.text, n);
      rounds = std::max(rounds, n);
    }
    int64_t expected = 0;
    for (int r = 0; r < rounds; ++r) expected += (experts - r) * int64_t(layers.size());
    add_stage("prune_select", config.expert_objective, expected);
    for (int layer : layers) {
      GreedyExpertOptions options{layer, experts, rounds, /*forward=*/false, LayerOp::kPrune, "prune_select",
                                  "prune", config.expert_objective, screening_};
      searches_.push_back(std::make_unique<GreedyExpertSearch>(options, book_));
    }
    layers_ = layers;
  }

  bool finished() const override {
    return std::all_of(searches_.begin(), searches_.end(), [](const auto& s) { return s->finished(); });
  }

  std::vector<BudgetPoint> budget_points() const override {
    std::vector<BudgetPoint> points;
    for (const auto& [budget, n] : budget_steps_) {
      Plan plan;
      double value = 0;
      bool ready = true;
      for (size_t i = 0; i < searches_.size(); ++i) {
        ready = ready && searches_[i]->rounds_done() >= n;
        if (!ready) break;
        plan.set_layer(layers_[i], LayerPlan{LayerOp::kPrune, searches_[i]->experts_after(n), {}, {}});
        value += searches_[i]->winner_values()[size_t(n - 1)];
      }
      if (ready) points.push_back(BudgetPoint{"prune", budget, plan, value});
    }
    return points;
  }

 private:
  bool advance_all() override {
    bool moved = false;
    for (auto& search : searches_) moved = search->advance() || moved;
    return moved;
  }

  std::vector<std::unique_ptr<GreedyExpertSearch>> searches_;
  std::vector<int> layers_;
  std::vector<std::pair<std::string, int>> budget_steps_;
};

}  // namespace

std::unique_ptr<Strategy> make_drop_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<DropStrategy>(shape, config, LayerOp::kDrop, "drop");
}

std::unique_ptr<Strategy> make_blockdrop_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<DropStrategy>(shape, config, LayerOp::kDropBlock, "blockdrop");
}

std::unique_ptr<Strategy> make_prune_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<PruneStrategy>(shape, config);
}

}  // namespace cdmoe::search
