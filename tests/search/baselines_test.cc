// The baselines: drop, prune, random and explicit plans.
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/param_count.h"
#include "tests/search/search_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::search {
namespace {

using testing::drive;
using testing::synthetic_shape;

SearchConfig config_for(std::vector<int> ks, const std::string& budgets, uint64_t seed = 0) {
  SearchConfig config;
  config.experts_kept = std::move(ks);
  config.budgets = parse_budgets(budgets, "--budgets");
  config.seed = seed;
  return config;
}

TEST(DropStrategy, DropsTheLayersThatMatterLeastAndMeetsMemoryBudgets) {
  ModelShape shape = synthetic_shape(6, 8, /*dense_first=*/1);
  std::map<int, double> cost = {{1, 0.5}, {2, 0.1}, {3, 0.9}, {4, 0.3}, {5, 0.7}};
  auto strategy = make_strategy("drop", shape, config_for({0}, "layers:2;memory:0.6"));
  drive(*strategy, [&](const Candidate& c) {
    EXPECT_EQ(c.stage, "drop_select");
    double total = 0;
    for (const auto& [layer, lp] : c.plan.layers()) {
      EXPECT_EQ(lp.op, LayerOp::kDrop);
      total += cost.at(layer);
    }
    return total;
  });
  auto points = strategy->budget_points();
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].budget, "layers:2");
  EXPECT_EQ(points[0].plan.canonical(), R"({"layers":{"2":{"op":"drop"},"4":{"op":"drop"}}})");
  EXPECT_LE(parameter_ratio(shape, points[1].plan), 0.6);
  Plan one_fewer;  // the point before it does not meet the budget
  auto it = points[1].plan.layers().begin();
  for (size_t i = 0; i + 1 < points[1].plan.layers().size(); ++i, ++it) one_fewer.set_layer(it->first, it->second);
  EXPECT_GT(parameter_ratio(shape, one_fewer), 0.6);
}

// BlockDrop: the same greedy selection over the MoE layers, each chosen block removed whole.
TEST(BlockDropStrategy, RemovesWholeBlocksGreedily) {
  ModelShape shape = synthetic_shape(6, 8, /*dense_first=*/1);
  std::map<int, double> cost = {{1, 0.5}, {2, 0.9}, {3, 0.1}, {4, 0.3}, {5, 0.7}};
  auto strategy = make_strategy("drop,blockdrop", shape, config_for({0}, "layers:3;memory:0.7"));
  std::set<std::string> stages;
  drive(*strategy, [&](const Candidate& c) {
    stages.insert(c.stage);
    double total = 0;
    for (const auto& [layer, lp] : c.plan.layers()) {
      EXPECT_EQ(lp.op, c.stage == "blockdrop_select" ? LayerOp::kDropBlock : LayerOp::kDrop);
      EXPECT_NE(layer, 0) << "candidates are the MoE layers";
      total += cost.at(layer);
    }
    return total;
  });
  EXPECT_EQ(stages, (std::set<std::string>{"drop_select", "blockdrop_select"}));
  std::vector<BudgetPoint> blockdrop;
  for (const BudgetPoint& p : strategy->budget_points()) {
    if (p.method == "blockdrop") blockdrop.push_back(p);
  }
  ASSERT_EQ(blockdrop.size(), 2u);
  EXPECT_EQ(blockdrop[0].budget, "layers:3");
  EXPECT_EQ(blockdrop[0].plan.canonical(),
            R"({"layers":{"1":{"op":"drop_block"},"3":{"op":"drop_block"},"4":{"op":"drop_block"}}})");
  EXPECT_LE(parameter_ratio(shape, blockdrop[1].plan), 0.7);
  // A block removes more than its MoE: fewer blocks than drops meet the same memory budget.
  for (const BudgetPoint& p : strategy->budget_points()) {
    if (p.method == "drop" && p.budget == "memory:0.7") {
      EXPECT_LE(blockdrop[1].plan.layers().size(), p.plan.layers().size());
    }
  }
}

TEST(PruneStrategy, RemovesTheExpertsThatMatterLeast) {
  ModelShape shape = synthetic_shape(3, 8);
  // Removing expert e of layer l costs importance[l][e]; the kept set's divergence is the sum
  // over removed experts.
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::map<int, std::vector<double>> importance;
  for (int layer : shape.moe_layers()) for (int e = 0; e < 8; ++e) importance[layer].push_back(u(rng));
  auto strategy = make_strategy("prune", shape, config_for({0}, "memory:0.8"));
  drive(*strategy, [&](const Candidate& c) {
    EXPECT_EQ(c.stage, "prune_select");
    const auto& [layer, lp] = *c.plan.layers().begin();
    EXPECT_EQ(lp.op, LayerOp::kPrune);
    double removed = 0;
    for (int e = 0; e < 8; ++e) {
      if (std::find(lp.experts.begin(), lp.experts.end(), e) == lp.experts.end()) removed += importance[layer][size_t(e)];
    }
    return removed;
  });
  auto points = strategy->budget_points();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_LE(parameter_ratio(shape, points[0].plan), 0.8);
  ASSERT_EQ(points[0].plan.layers().size(), 3u);
  for (const auto& [layer, lp] : points[0].plan.layers()) {
    // The kept experts are the most important ones.
    std::vector<double> sorted = importance[layer];
    std::sort(sorted.rbegin(), sorted.rend());
    double threshold = sorted[lp.experts.size() - 1];
    for (int e : lp.experts) EXPECT_GE(importance[layer][size_t(e)], threshold) << "layer " << layer;
  }
}

TEST(RandomStrategy, SeededValidAndNeedsNoSearch) {
  ModelShape shape = synthetic_shape(8, 16, 1);
  auto a = make_strategy("random", shape, config_for({0, 3}, "layers:2,5", 11));
  auto b = make_strategy("random", shape, config_for({0, 3}, "layers:2,5", 11));
  auto c = make_strategy("random", shape, config_for({0, 3}, "layers:2,5", 12));
  EXPECT_TRUE(a->finished());
  EXPECT_TRUE(a->next().empty());
  auto points = a->budget_points();
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(testing::budget_texts(points), testing::budget_texts(b->budget_points()));
  EXPECT_NE(testing::budget_texts(points), testing::budget_texts(c->budget_points()));
  EXPECT_EQ(points[0].method, "random_s");
  EXPECT_EQ(points[2].method, "random_sr_k3");
  for (const BudgetPoint& p : points) {
    EXPECT_NO_THROW(p.plan.validate(shape, "random"));
    EXPECT_EQ(int(p.plan.layers().size()), std::stoi(p.budget.substr(7)));
    for (const auto& [layer, lp] : p.plan.layers()) EXPECT_EQ(lp.experts.size(), p.method == "random_s" ? 0u : 3u);
  }
}

TEST(PlansStrategy, ReadsJsonlAndNamesTheBadLine) {
  ModelShape shape = synthetic_shape(4, 8);
  cdmoe::testing::TempDir dir;
  std::string good = dir.file("plans.jsonl");
  cdmoe::testing::write_file(good,
                             "{\"name\": \"two-drops\", \"plan\": {\"layers\": {\"0\": {\"op\": \"drop\"}, \"1\": {\"op\": \"drop\"}}}}\n"
                             "\n"
                             "{\"layers\": {\"2\": {\"op\": \"condense\", \"experts\": [1, 2]}}}\n");
  SearchConfig config = config_for({0}, "layers:1");
  config.plans_file = good;
  auto strategy = make_strategy("plans", shape, config);
  auto points = strategy->budget_points();
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].budget, "two-drops");
  EXPECT_EQ(points[1].budget, "line:3");
  EXPECT_EQ(points[1].plan.layers().at(2).experts, (std::vector<int>{1, 2}));

  std::string bad = dir.file("bad.jsonl");
  cdmoe::testing::write_file(bad, "{\"layers\": {}}\n{\"layers\": {\"9\": {\"op\": \"drop\"}}}\n");
  config.plans_file = bad;
  try {
    make_strategy("plans", shape, config);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ":2: layer \"9\" is out of range"), std::string::npos) << e.what();
  }
  config.plans_file = dir.file("missing.jsonl");
  EXPECT_THROW(make_strategy("plans", shape, config), Error);

  // Lines may carry their method and budget (cdmoe-import-reference writes them).
  std::string named = dir.file("named.jsonl");
  cdmoe::testing::write_file(named,
                             "{\"name\": \"a\", \"method\": \"reference_s\", \"budget\": \"layers:1\", \"plan\": {\"layers\": {\"1\": {\"op\": \"drop\"}}}}\n"
                             "{\"name\": \"b\", \"method\": \"reference_s\", \"budget\": \"layers:2\", \"plan\": {\"layers\": {\"2\": {\"op\": \"drop\"}}}}\n");
  config.plans_file = named;
  points = make_strategy("plans", shape, config)->budget_points();
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].method, "reference_s");
  EXPECT_EQ(points[1].budget, "layers:2");
  auto refusal = [&](const std::string& line) {
    cdmoe::testing::write_file(named, line + "\n");
    try {
      make_strategy("plans", shape, config);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refusal(R"({"name": "a", "methd": "x", "plan": {}})").find(":1: unknown field 'methd'"), std::string::npos);
  EXPECT_NE(refusal(R"({"name": "a", "method": "Ref S", "plan": {}})").find("method \"Ref S\" must be lower_snake_case"), std::string::npos);
  // Budgets (and names, their default) are stored and drawn in the report: no control
  // characters (a NUL made the SVGs ill-formed XML), valid UTF-8.
  EXPECT_NE(refusal(R"({"name": "a", "budget": "layers:\u0000x", "plan": {}})").find(":1: budget holds a control character (U+0000"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"name": "a\u001b[31m", "plan": {}})").find(":1: budget holds a control character (U+001B"), std::string::npos);
  EXPECT_NE(refusal("{\"name\": \"a\", \"budget\": \"x\\u0085\", \"plan\": {}}").find("control character (U+0085"), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::search
