// Budgets: parsing, and mapping to curve points on the paper's two models (hand numbers).
#include "search/budget.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/model_shape.h"
#include "model/family.h"
#include "core/param_count.h"
#include "core/plan.h"
#include "search/book_strategy.h"

namespace cdmoe::search {
namespace {

const std::string kFixtures = CDMOE_TEST_FIXTURES;

std::string bad_budget(const std::string& spec) {
  try {
    parse_budgets(spec, "--budgets");
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  ADD_FAILURE() << "accepted " << spec;
  return "";
}

TEST(Budgets, Parse) {
  auto budgets = parse_budgets("layers:1-3,5; memory:0.7,20GiB | speed:1.25", "--budgets");
  ASSERT_EQ(budgets.size(), 7u);
  EXPECT_EQ(budgets[0].text, "layers:1");
  EXPECT_EQ(budgets[3].text, "layers:5");
  EXPECT_EQ(budgets[4].kind, Budget::Kind::kMemory);
  EXPECT_DOUBLE_EQ(budgets[4].value, 0.7);
  EXPECT_DOUBLE_EQ(budgets[5].value, 20.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(budgets[5].text, "memory:20GiB");
  EXPECT_EQ(budgets[6].kind, Budget::Kind::kSpeed);
  EXPECT_DOUBLE_EQ(budgets[6].value, 1.25);

  EXPECT_NE(bad_budget("layers:0").find("must be a positive integer"), std::string::npos);
  EXPECT_NE(bad_budget("layers:3-1").find("runs backwards"), std::string::npos);
  EXPECT_NE(bad_budget("mem:0.5").find("kind \"mem\" is not one of layers, memory, speed"), std::string::npos);
  EXPECT_NE(bad_budget("speed:-1").find("must be positive"), std::string::npos);
  EXPECT_NE(bad_budget("memory:lots").find("\"lots\" is not a number"), std::string::npos);
  EXPECT_NE(bad_budget("layers:").find("empty value"), std::string::npos);
  EXPECT_NE(bad_budget("9").find("is not KIND:VALUES"), std::string::npos);
  EXPECT_NE(bad_budget(" ; ").find("no budget given"), std::string::npos);
}

int resolve(const ModelShape& shape, const std::string& budget, int k) {
  auto plan_at = [&](int n) { return plan_changing_first_layers(shape, n, condensed_any(k)); };
  return resolve_budget(parse_budgets(budget, "b")[0], shape, int(shape.moe_layers().size()), plan_at, CostModel{},
                        "cdmoe");
}

TEST(Budgets, MemoryOnDeepSeekMoE16B) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/deepseek-moe-16b");
  // Each SR (k = 6) layer saves 501,874,688 of 16,375,728,128 parameters: 8 layers reach
  // 0.7548, 9 reach 0.7242 (the paper's 72.5% point).
  EXPECT_EQ(resolve(s, "memory:0.725", 6), 9);
  EXPECT_EQ(resolve(s, "memory:0.76", 6), 8);
  EXPECT_EQ(resolve(s, "memory:1", 6), 1);
  // In bytes at the checkpoint's bf16: 0.725 × 2 × 16,375,728,128.
  EXPECT_EQ(resolve(s, "memory:23744805785", 6), 9);
  EXPECT_EQ(resolve(s, "layers:27", 0), 27);
  try {
    resolve(s, "memory:0.1", 6);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "budget memory:0.1 cannot be met by cdmoe: the smallest it reaches is memory:0.1725 (27 points)");
  }
  EXPECT_THROW(resolve(s, "layers:28", 6), Error);
}

TEST(Budgets, MemoryOnQwen15MoE) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/qwen1.5-moe-a2.7b");
  // A k = 4 layer keeps 3·2048·(5632 + 4·1408) of 553,773,056 MoE parameters, saving
  // 484,567,040 of 14,315,784,192: half the memory needs 14.77 -> 15 layers.
  EXPECT_EQ(resolve(s, "memory:0.5", 4), 15);
  EXPECT_EQ(resolve(s, "memory:0.5", 0), 14);  // shared only saves 519,170,048 per layer
}

TEST(Budgets, SpeedIsMonotoneAndMapsToTheFirstPointThatMeetsIt) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/deepseek-moe-16b");
  CostModel cost;
  double previous = 1;
  for (int n = 1; n <= 27; ++n) {
    double speedup = estimated_speedup(s, plan_changing_first_layers(s, n, condensed_any(6)), cost);
    EXPECT_GT(speedup, previous);
    previous = speedup;
  }
  double s0 = estimated_speedup(s, plan_changing_first_layers(s, 27, condensed_any(0)), cost);
  EXPECT_GT(s0, previous) << "shared-only is cheaper than shared + 6";
  int n = resolve(s, "speed:1.2", 6);
  EXPECT_GE(estimated_speedup(s, plan_changing_first_layers(s, n, condensed_any(6)), cost), 1.2);
  EXPECT_LT(estimated_speedup(s, plan_changing_first_layers(s, n - 1, condensed_any(6)), cost), 1.2);
  try {
    resolve(s, "speed:50", 6);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("budget speed:50 cannot be met by cdmoe: the fastest it reaches is an estimated speed:"),
              std::string::npos) << e.what();
  }
  // Dropping is faster still, removing whole blocks faster again, and an original plan costs
  // exactly the original.
  double drop = estimated_speedup(s, plan_changing_first_layers(s, 27, LayerPlan{LayerOp::kDrop, {}, {}, {}}), cost);
  double block = estimated_speedup(s, plan_changing_first_layers(s, 27, LayerPlan{LayerOp::kDropBlock, {}, {}, {}}), cost);
  EXPECT_GT(drop, s0);
  EXPECT_GT(block, drop);
  // Every block but the dense layer 0 gone: only layer 0, the embedding and the head remain.
  CostModel c;
  Plan only_first = plan_changing_first_layers(s, 27, LayerPlan{LayerOp::kDropBlock, {}, {}, {}});
  Plan dense_dropped = only_first;
  dense_dropped.set_layer(0, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  EXPECT_GT(estimated_speedup(s, dense_dropped, c), estimated_speedup(s, only_first, c)) << "a dropped dense MLP costs nothing";
  EXPECT_DOUBLE_EQ(estimated_speedup(s, Plan(), cost), 1.0);
}

}  // namespace
}  // namespace cdmoe::search
