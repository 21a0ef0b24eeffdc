// The cdmoe and drop strategies on synthetic objectives where the right answer is known.
#include <cmath>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/search/search_test_util.h"

namespace cdmoe::search {
namespace {

using testing::drive;
using testing::synthetic_shape;
using testing::bad_input_message;

// Additive costs: expert e in layer l costs expert_cost[l][e] in the local objective; layer l
// condensed costs layer_cost[l] in the model objective. Greedy is optimal for these.
struct Additive {
  std::map<int, std::vector<double>> expert_cost;
  std::map<int, double> layer_cost;

  Additive(const ModelShape& shape, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.01, 1.0);
    for (int layer : shape.moe_layers()) {
      for (int e = 0; e < shape.num_routed_experts; ++e) expert_cost[layer].push_back(u(rng));
      layer_cost[layer] = u(rng);
    }
  }
  double operator()(const Candidate& c) const {
    double total = 0;
    for (const auto& [layer, lp] : c.plan.layers()) {
      if (c.objective.scope == "model") {
        total += layer_cost.at(layer);
      } else {
        for (int e : lp.experts) total += expert_cost.at(layer)[size_t(e)];
      }
    }
    return total;
  }
  std::vector<int> cheapest_experts(int layer, int k) const {
    std::vector<int> order(expert_cost.at(layer).size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return expert_cost.at(layer)[size_t(a)] < expert_cost.at(layer)[size_t(b)]; });
    order.resize(size_t(k));
    std::sort(order.begin(), order.end());
    return order;
  }
  std::vector<int> cheapest_layers(int n) const {
    std::vector<std::pair<double, int>> by_cost;
    for (const auto& [layer, cost] : layer_cost) by_cost.emplace_back(cost, layer);
    std::sort(by_cost.begin(), by_cost.end());
    std::vector<int> layers;
    for (int i = 0; i < n; ++i) layers.push_back(by_cost[size_t(i)].second);
    std::sort(layers.begin(), layers.end());
    return layers;
  }
};

SearchConfig config_for(std::vector<int> ks, const std::string& budgets) {
  SearchConfig config;
  config.experts_kept = std::move(ks);
  config.budgets = parse_budgets(budgets, "--budgets");
  return config;
}

struct Size {
  int layers, experts, dense_first;
  std::vector<int> ks;
};

TEST(CdmoeStrategy, FindsTheOptimumOfAnAdditiveObjective) {
  for (const Size& size : {Size{4, 8, 0, {0, 2}}, Size{6, 16, 1, {3}}, Size{10, 12, 2, {0, 4, 5}}, Size{3, 64, 0, {6}}}) {
    ModelShape shape = synthetic_shape(size.layers, size.experts, size.dense_first);
    Additive objective(shape, unsigned(size.layers * 100 + size.experts));
    int moe = int(shape.moe_layers().size());
    auto strategy = make_strategy("cdmoe", shape, config_for(size.ks, "layers:1-" + std::to_string(moe)));
    auto log = drive(*strategy, objective);
    ASSERT_TRUE(strategy->finished());

    auto points = strategy->budget_points();
    ASSERT_EQ(points.size(), size.ks.size() * size_t(moe));
    for (const BudgetPoint& point : points) {
      int n = std::stoi(point.budget.substr(7));
      int k = point.method == "cdmoe_s" ? 0 : std::stoi(point.method.substr(10));
      Plan expected;
      for (int layer : objective.cheapest_layers(n)) {
        expected.set_layer(layer, LayerPlan{LayerOp::kCondense, objective.cheapest_experts(layer, k), {}, {}});
      }
      EXPECT_EQ(point.plan, expected) << point.method << " " << point.budget << " size " << size.layers << "x" << size.experts;
    }
    // The paper's candidate counts: sum over rounds of the remaining experts, per MoE layer;
    // layer selection offers L, L-1, ... layers per step, per k.
    int k_max = *std::max_element(size.ks.begin(), size.ks.end());
    long expert_candidates = 0, layer_candidates = 0;
    for (const Candidate& c : log.handed) {
      (c.stage == "expert_select" ? expert_candidates : layer_candidates)++;
      // Layer-selection candidates are points of the layers:t curve; their parent has t-1 layers.
      if (c.stage != "expert_select") {
        EXPECT_EQ(c.budget, "layers:" + std::to_string(c.plan.layers().size()));
        if (c.plan.layers().size() > 1) {
          ASSERT_TRUE(c.parent.has_value());
          EXPECT_EQ(c.parent->plan.layers().size() + 1, c.plan.layers().size());
        } else {
          EXPECT_FALSE(c.parent.has_value());
        }
      }
    }
    long expected_expert = 0;
    for (int r = 0; r < k_max; ++r) expected_expert += (size.experts - r) * moe;
    EXPECT_EQ(expert_candidates, expected_expert);
    EXPECT_EQ(layer_candidates, long(size.ks.size()) * moe * (moe + 1) / 2);
    // Progress: every stage done, its expected total met exactly.
    for (const StageProgress& stage : strategy->progress()) {
      EXPECT_EQ(stage.done, stage.total) << stage.stage;
      EXPECT_GT(stage.total, 0) << stage.stage;
      EXPECT_FALSE(std::isnan(stage.best)) << stage.stage;
    }
  }
}

// Pairwise interactions: greedy can miss the optimum, but a beam at least as wide as the
// number of subsets of any size keeps every subset, so the curve is the brute-force optimum.
TEST(LayerSelection, WideBeamReproducesBruteForce) {
  ModelShape shape = synthetic_shape(5, 4);
  std::mt19937 rng(7);
  std::normal_distribution<double> n01(0, 1);
  double single[5], pair[5][5];
  for (int i = 0; i < 5; ++i) {
    single[i] = 1 + n01(rng);
    for (int j = 0; j < 5; ++j) pair[i][j] = n01(rng);
  }
  auto f = [&](const std::vector<int>& layers) {
    double total = 0;
    for (int a : layers) {
      total += single[a];
      for (int b : layers) total += a < b ? pair[a][b] : 0;
    }
    return total;
  };
  SearchConfig config = config_for({0}, "layers:1-5");
  config.beam_width = 10;  // C(5, 2) = C(5, 3) = 10
  for (const char* name : {"cdmoe", "drop"}) {
    auto strategy = make_strategy(name, shape, config);
    drive(*strategy, [&](const Candidate& c) {
      std::vector<int> layers;
      for (const auto& [layer, lp] : c.plan.layers()) layers.push_back(layer);
      return f(layers);
    });
    auto points = strategy->budget_points();
    ASSERT_EQ(points.size(), 5u);
    for (int n = 1; n <= 5; ++n) {
      double best = INFINITY;
      std::vector<int> best_set;
      for (int mask = 0; mask < 32; ++mask) {
        std::vector<int> set;
        for (int i = 0; i < 5; ++i) if (mask >> i & 1) set.push_back(i);
        if (int(set.size()) == n && f(set) < best) best = f(set), best_set = set;
      }
      std::vector<int> got;
      for (const auto& [layer, lp] : points[size_t(n - 1)].plan.layers()) got.push_back(layer);
      EXPECT_EQ(got, best_set) << name << " n=" << n;
      EXPECT_NEAR(points[size_t(n - 1)].search_value, best, 1e-12);
    }
  }
}

TEST(CdmoeStrategy, DeterministicWhateverTheResultOrder) {
  ModelShape shape = synthetic_shape(6, 10, 1);
  Additive objective(shape, 99);
  SearchConfig config = config_for({0, 3}, "layers:1-5");
  config.beam_width = 2;
  auto a = make_strategy("cdmoe", shape, config);
  auto b = make_strategy("cdmoe", shape, config);
  auto c = make_strategy("cdmoe", shape, config);
  auto log_a = drive(*a, objective);
  auto log_b = drive(*b, objective);
  auto log_c = drive(*c, objective, /*order_seed=*/42, -1, /*in_flight=*/7);  // out of order, partial batches
  ASSERT_EQ(log_a.handed.size(), log_b.handed.size());
  for (size_t i = 0; i < log_a.handed.size(); ++i) {
    EXPECT_EQ(log_a.handed[i].stage, log_b.handed[i].stage);
    EXPECT_EQ(log_a.handed[i].plan.hash(), log_b.handed[i].plan.hash());
  }
  EXPECT_EQ(testing::budget_texts(a->budget_points()), testing::budget_texts(b->budget_points()));
  EXPECT_EQ(testing::budget_texts(a->budget_points()), testing::budget_texts(c->budget_points()));
  std::multiset<std::string> handed_a, handed_c;
  for (const auto& x : log_a.handed) handed_a.insert(x.stage + x.plan.canonical());
  for (const auto& x : log_c.handed) handed_c.insert(x.stage + x.plan.canonical());
  EXPECT_EQ(handed_a, handed_c) << "the same candidates, whatever order results came in";
}

// Resume: a fresh strategy fed the stored results (in database order) and then run on gives
// the same plans as an uninterrupted run, and never asks again for a stored result.
TEST(CdmoeStrategy, ReplayingAPrefixAndContinuingMatchesAnUninterruptedRun) {
  ModelShape shape = synthetic_shape(5, 8);
  Additive objective(shape, 5);
  SearchConfig config = config_for({0, 2}, "layers:1-5;memory:0.9");
  auto full = make_strategy("cdmoe", shape, config);
  auto full_log = drive(*full, objective);
  for (long stop : {0L, 1L, 17L, 40L, long(full_log.recorded.size()) - 3, long(full_log.recorded.size())}) {
    auto first = make_strategy("cdmoe", shape, config);
    auto prefix = drive(*first, objective, /*order_seed=*/3, stop, 5);
    auto resumed = make_strategy("cdmoe", shape, config);
    std::set<std::string> stored;
    for (const auto& r : prefix.recorded) {
      resumed->record(r.stage, r.plan, {{config.expert_objective.metric_name(), r.value, ""},
                                        {config.layer_objective.metric_name(), r.value, ""}});
      stored.insert(r.stage + r.plan.canonical());
    }
    auto rest = drive(*resumed, objective);
    for (const auto& c : rest.handed) EXPECT_FALSE(stored.count(c.stage + c.plan.canonical())) << "re-asked after stop " << stop << ": " << c.stage << " " << c.plan.canonical();
    EXPECT_EQ(prefix.recorded.size() + rest.recorded.size(), full_log.recorded.size()) << "stop " << stop;
    EXPECT_EQ(testing::budget_texts(resumed->budget_points()), testing::budget_texts(full->budget_points())) << "stop " << stop;
  }
}

// With the same objective in both stages, layer selection's first step is expert selection's
// last round winners: nothing is evaluated twice.
TEST(CdmoeStrategy, NeverEvaluatesTheSameObjectiveAndPlanTwice) {
  ModelShape shape = synthetic_shape(4, 6);
  Additive objective(shape, 11);
  SearchConfig config = config_for({2}, "layers:1-4");
  config.expert_objective = config.layer_objective;  // js-logits on the model output in both stages
  auto strategy = make_strategy("cdmoe", shape, config);
  auto log = drive(*strategy, objective);
  std::set<std::string> seen;
  long layer_select = 0;
  for (const Candidate& c : log.handed) {
    EXPECT_TRUE(seen.insert(c.objective.metric_name() + c.plan.canonical()).second) << c.plan.canonical();
    layer_select += c.stage == "layer_select_k2";
  }
  EXPECT_EQ(layer_select, 3 + 2 + 1) << "step 1 (4 candidates) came from expert selection";
  EXPECT_EQ(strategy->budget_points().size(), 4u);
}

TEST(CdmoeStrategy, ScreeningSavesFullEvaluationsAndKeepsTheAnswer) {
  ModelShape shape = synthetic_shape(4, 16);
  Additive objective(shape, 23);
  auto screened_value = [&](const Candidate& c) {
    // A screen on part of the data: the full value plus a small deterministic error.
    double full = objective(c);
    return c.objective.calib_fraction < 1 ? full * (1 + 0.002 * std::sin(full * 1000)) : full;
  };
  SearchConfig plain = config_for({4}, "layers:1-4");
  SearchConfig screened = plain;
  screened.screen_fraction = 0.25;
  screened.screen_margin = 0.05;
  auto a = make_strategy("cdmoe", shape, plain);
  auto b = make_strategy("cdmoe", shape, screened);
  auto log_a = drive(*a, screened_value);
  auto log_b = drive(*b, screened_value);
  EXPECT_EQ(testing::budget_texts(a->budget_points()), testing::budget_texts(b->budget_points()));
  long full_a = 0, full_b = 0, screens = 0;
  for (const auto& c : log_a.handed) full_a += c.objective.calib_fraction == 1;
  for (const auto& c : log_b.handed) {
    full_b += c.objective.calib_fraction == 1;
    if (c.stage.size() > 7 && c.stage.compare(c.stage.size() - 7, 7, "_screen") == 0) {
      ++screens;
      EXPECT_EQ(c.objective.metric_name().substr(c.objective.metric_name().size() - 4), "_f25");
    }
  }
  EXPECT_GT(screens, 0);
  EXPECT_LT(full_b * 2, full_a) << "screening should stop most candidates early";
}

TEST(CdmoeStrategy, FailedCandidatesNeverWin) {
  ModelShape shape = synthetic_shape(3, 6);
  Additive objective(shape, 31);
  auto strategy = make_strategy("cdmoe", shape, config_for({1}, "layers:1"));
  int best_layer = objective.cheapest_layers(1)[0];
  int best_expert = objective.cheapest_experts(best_layer, 1)[0];
  for (;;) {
    auto batch = strategy->next();
    if (batch.empty()) break;
    for (const Candidate& c : batch) {
      const auto& lp = c.plan.layers().begin()->second;
      bool poisoned = c.stage == "expert_select" && c.plan.layers().begin()->first == best_layer &&
                      lp.experts == std::vector<int>{best_expert};
      if (poisoned) {
        strategy->record_failure(c.stage, c.plan);
      } else {
        strategy->record(c.stage, c.plan, {{c.objective.metric_name(), objective(c), ""}});
      }
    }
  }
  ASSERT_TRUE(strategy->finished());
  // The layer objective ignores experts, so the cheapest layer is chosen; its failed best
  // expert lost to the second cheapest.
  const auto& [layer, chosen] = *strategy->budget_points()[0].plan.layers().begin();
  ASSERT_EQ(layer, best_layer);
  std::vector<int> two = objective.cheapest_experts(best_layer, 2);  // ascending by index
  two.erase(std::find(two.begin(), two.end(), best_expert));
  EXPECT_EQ(chosen.experts, two);
}

TEST(CdmoeStrategy, RejectsBadConfigurations) {
  ModelShape shape = synthetic_shape(4, 8);
  auto message = [&](const std::string& name, const SearchConfig& config) {
    return bad_input_message([&] { make_strategy(name, shape, config); });
  };
  EXPECT_NE(message("greedy", config_for({6}, "layers:1")).find("unknown strategy \"greedy\" (strategies: cdmoe, drop, prune, random, plans, blockdrop)"),
            std::string::npos);
  EXPECT_NE(message("cdmoe", config_for({9}, "layers:1")).find("k = 9 is outside 0..8"), std::string::npos);
  EXPECT_NE(message("cdmoe", config_for({2}, "layers:5")).find("budget layers:5 cannot be met by cdmoe_sr_k2: it has 4 points"),
            std::string::npos);
  EXPECT_NE(message("prune", config_for({2}, "layers:2")).find("give memory: or speed: budgets"), std::string::npos);
  SearchConfig bad_objective = config_for({2}, "layers:1");
  bad_objective.layer_objective.divergence = "wasserstein";
  EXPECT_NE(message("cdmoe", bad_objective).find("objective \"wasserstein\" is not one of"), std::string::npos);
  SearchConfig bad_beam = config_for({2}, "layers:1");
  bad_beam.beam_width = 0;
  EXPECT_NE(message("cdmoe", bad_beam).find("--beam-width"), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::search
