// The layer cache changes nothing but the cost: every objective, with the cache (large or
// nearly full) and without it, on candidates of every op; base changes invalidate correctly.
#include "eval/layer_cache.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/divergence.h"
#include "tests/test_device.h"

namespace cdmoe::eval {
namespace {

const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

struct Calibration {
  at::Tensor ids, mask;
};

Calibration calibration(int64_t vocab) {
  at::Tensor ids = (at::arange(4 * 9, at::kLong).view({4, 9}) * 37 + 5) % vocab;
  at::Tensor mask = at::ones({4, 9}, at::kLong);
  mask[1].narrow(0, 7, 2).fill_(0);  // right padding
  return {ids, mask};
}

class CacheExactness : public ::testing::TestWithParam<std::string> {};

TEST_P(CacheExactness, EveryObjectiveEqualsTheUncachedOne) {
  auto model = model::MoeModel::load(kModels + "/" + GetParam(), testing::test_device());
  Calibration c = calibration(model->shape().vocab_size);
  std::vector<int> moe = model->shape().moe_layers();
  int first = moe.front(), last = moe.back();
  std::vector<Plan> local = {
      Plan::parse("{\"layers\":{\"" + std::to_string(first) + "\":{\"op\":\"condense\",\"experts\":[1,3],\"weights\":[0.4,0.3],\"shared_weight\":1.0}}}", "p"),
      Plan::parse("{\"layers\":{\"" + std::to_string(last) + "\":{\"op\":\"prune\",\"experts\":[0,2,4]}}}", "p"),
      Plan::parse("{\"layers\":{\"" + std::to_string(first) + "\":{\"op\":\"drop\"}}}", "p")};
  Plan two = local[0];
  two.set_layer(2, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  LayerCache cached(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  LayerCache tight(*model, c.ids, c.mask, Plan(), int64_t(c.ids.numel()) * model->shape().hidden_size * 4);  // one boundary fits
  LayerCache uncached(*model, c.ids, c.mask, Plan(), 0);
  int measured = 0;
  for (const char* divergence : {"js-hidden", "js-logits", "kl", "mse", "cosine"}) {
    for (const Plan& plan : local) {
      for (const char* scope : {"layer", "model"}) {
        double a = measure_objective(cached, divergence, scope, plan);
        double b = measure_objective(uncached, divergence, scope, plan);
        double t = measure_objective(tight, divergence, scope, plan);
        EXPECT_LE(std::abs(a - b), 1e-6 * std::max(1e-12, std::abs(b))) << divergence << " " << scope << " " << plan.canonical();
        EXPECT_LE(std::abs(t - b), 1e-6 * std::max(1e-12, std::abs(b)));
        EXPECT_GT(b, 0) << divergence << " " << scope << " " << plan.canonical();
        ++measured;
      }
    }
    double a = measure_objective(cached, divergence, "model", two), b = measure_objective(uncached, divergence, "model", two);
    EXPECT_LE(std::abs(a - b), 1e-6 * std::abs(b));
    EXPECT_NEAR(measure_objective(cached, divergence, "model", Plan()), 0.0, 1e-9) << "the base against itself";
  }
  EXPECT_EQ(measured, 30);
  EXPECT_GT(cached.stats().hits, 0);
  EXPECT_EQ(uncached.stats().bytes, 0);
  EXPECT_THROW(measure_objective(cached, "js-hidden", "layer", two), Error) << "two layers changed, local scope";
}

INSTANTIATE_TEST_SUITE_P(Families, CacheExactness, ::testing::Values("deepseek_gqa", "qwen_sharded"));

TEST(LayerCache, LocalObjectiveIsTheLayersOwnOutputAndScreensUseLeadingRows) {
  auto model = model::MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  Calibration c = calibration(96);
  LayerCache cache(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  Plan plan = Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[2],"weights":[0.5]}}})", "p");
  // By hand: run layers 0..1 of the original, then layer 1 both ways.
  at::Tensor input = model->run_layers(model->embed(c.ids), c.mask, 0, 1, Plan());
  at::Tensor original = model->run_layers(input, c.mask, 1, 2, Plan());
  at::Tensor condensed = model->run_layers(input, c.mask, 1, 2, plan);
  at::Tensor valid = c.mask.to(model->device(), at::kBool).flatten();
  double by_hand = js_hidden(original.reshape({-1, 32}), condensed.reshape({-1, 32}), valid);
  EXPECT_NEAR(measure_objective(cache, "js-hidden", "layer", plan), by_hand, 1e-12);
  // A screen on half the data equals the objective on a cache of the first two sequences (to
  // float32 GEMM rounding: a batch of 2 rows blocks differently from one of 4).
  LayerCache half(*model, c.ids.narrow(0, 0, 2), c.mask.narrow(0, 0, 2), Plan(), int64_t(1) << 30);
  double screened = measure_objective(cache, "js-logits", "model", plan, 0.5);
  double direct = measure_objective(half, "js-logits", "model", plan);
  EXPECT_LE(std::abs(screened - direct), 1e-6 * direct);
  EXPECT_GT(std::abs(screened - measure_objective(cache, "js-logits", "model", plan)), 1e-6) << "the screen saw less data";
}

TEST(LayerCache, ChangingTheBaseInvalidatesOnlyWhatFollows) {
  auto model = model::MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  Calibration c = calibration(96);
  LayerCache cache(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  for (int layer = 0; layer <= 3; ++layer) cache.boundary(layer);
  Plan base = Plan::parse(R"({"layers":{"2":{"op":"prune","experts":[0,1,2,3]}}})", "p");
  cache.set_base(base);
  int64_t hits = cache.stats().hits, computed = cache.stats().computed;
  cache.boundary(2);  // still valid: layers 0..1 unchanged
  EXPECT_EQ(cache.stats().hits, hits + 1);
  at::Tensor after = cache.boundary(3);  // layer 2 changed: recomputed
  EXPECT_EQ(cache.stats().computed, computed + 1);
  LayerCache fresh(*model, c.ids, c.mask, base, int64_t(1) << 30);
  EXPECT_TRUE(at::equal(after, fresh.boundary(3)));
  Plan more = base;
  more.set_layer(1, LayerPlan{LayerOp::kCondense, {0}, {0.5}, {}});
  EXPECT_NEAR(measure_objective(cache, "js-logits", "model", more), measure_objective(fresh, "js-logits", "model", more), 1e-12);
}

}  // namespace
}  // namespace cdmoe::eval
