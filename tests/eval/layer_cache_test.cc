// The layer cache changes nothing but the cost: every objective, with the cache (large or
// nearly full) and without it, on candidates of every op; base changes invalidate correctly.
#include "eval/layer_cache.h"

#include <algorithm>

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
  EXPECT_EQ(cached.stats().parts_computed, 1) << "the layer-scope condense candidates sum the cached expert outputs";
  EXPECT_EQ(tight.stats().parts_computed, 0) << "parts that do not fit: the plain path";
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
  EXPECT_LE(std::abs(measure_objective(cache, "js-hidden", "layer", plan) - by_hand), 1e-6 * by_hand);
  // The last layer's output is the model's last hidden state: compared after the final norm, as
  // the reference compares transformers' hidden_states[-1] (normed) for its last MoE layer.
  const int last = int(model->shape().num_layers) - 1;
  ASSERT_TRUE(model->shape().is_moe_layer(last));
  Plan at_last = Plan::parse("{\"layers\":{\"" + std::to_string(last) + "\":{\"op\":\"condense\",\"experts\":[2],\"weights\":[0.5]}}}", "p");
  at::Tensor last_input = model->run_layers(model->embed(c.ids), c.mask, 0, last, Plan());
  at::Tensor last_original = model->run_layers(last_input, c.mask, last, last + 1, Plan());
  at::Tensor last_condensed = model->run_layers(last_input, c.mask, last, last + 1, at_last);
  double normed = js_hidden(model->final_norm(last_original).reshape({-1, 32}), model->final_norm(last_condensed).reshape({-1, 32}), valid);
  double raw = js_hidden(last_original.reshape({-1, 32}), last_condensed.reshape({-1, 32}), valid);
  EXPECT_LE(std::abs(measure_objective(cache, "js-hidden", "layer", at_last) - normed), 1e-6 * normed);
  EXPECT_GT(std::abs(normed - raw), 1e-3 * normed) << "the norm changes the value: the test can tell them apart";
  // A screen on half the data equals the objective on a cache of the first two sequences (to
  // float32 GEMM rounding: a batch of 2 rows blocks differently from one of 4).
  LayerCache half(*model, c.ids.narrow(0, 0, 2), c.mask.narrow(0, 0, 2), Plan(), int64_t(1) << 30);
  double screened = measure_objective(cache, "js-logits", "model", plan, 0.5);
  double direct = measure_objective(half, "js-logits", "model", plan);
  EXPECT_LE(std::abs(screened - direct), 1e-6 * direct);
  EXPECT_GT(std::abs(screened - measure_objective(cache, "js-logits", "model", plan)), 1e-6) << "the screen saw less data";
}

// --divergence-mean sequence through the cache: the objective is the mean over sequences of
// the objective measured on each sequence alone (to float32 GEMM rounding across batch shapes).
TEST(LayerCache, SequenceMeanAveragesEachSequencesObjective) {
  auto model = model::MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  Calibration c = calibration(96);
  c.mask[2].narrow(0, 3, 6).fill_(0);  // lengths 9, 7, 3, 9: the two means differ
  LayerCache cache(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  cache.set_divergence_mean(DivergenceMean::kSequence);
  Plan plan = Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[2],"weights":[0.5]}}})", "p");
  for (const char* divergence : {"js-logits", "js-hidden", "mse"}) {
    for (const char* scope : {"layer", "model"}) {
      double sum = 0;
      for (int64_t b = 0; b < 4; ++b) {
        LayerCache alone(*model, c.ids.narrow(0, b, 1), c.mask.narrow(0, b, 1), Plan(), int64_t(1) << 30);
        sum += measure_objective(alone, divergence, scope, plan);
      }
      const double by_sequence = measure_objective(cache, divergence, scope, plan);
      EXPECT_LE(std::abs(by_sequence - sum / 4), 1e-5 * sum / 4) << divergence << " " << scope;
      cache.set_divergence_mean(DivergenceMean::kToken);
      EXPECT_GT(std::abs(measure_objective(cache, divergence, scope, plan) - by_sequence), 1e-4 * by_sequence)
          << divergence << " " << scope << ": the token mean weighs the long sequences more";
      cache.set_divergence_mean(DivergenceMean::kSequence);
    }
  }
}

// Expert selection as a weighted sum: the cached parts give each layer's condensed output for
// any expert set; under a cap that holds one layer's parts, the least recently used make room.
TEST(LayerCache, ExpertCandidatesSumCachedPartsWithinTheCap) {
  for (const char* family : {"deepseek_gqa", "qwen_sharded"}) {
    auto model = model::MoeModel::load(kModels + "/" + family, testing::test_device());
    const ModelShape& shape = model->shape();
    Calibration c = calibration(shape.vocab_size);
    model->collect_router_stats(true);  // implicit weights: the router's averages, as in a sweep
    model->run_layers(model->embed(c.ids), c.mask, 0, int(shape.num_layers), Plan());
    model->collect_router_stats(false);
    const int64_t boundary_bytes = c.ids.numel() * shape.hidden_size * 4;
    const int64_t parts_bytes = (shape.num_routed_experts + 3) * boundary_bytes;  // and one partial sum
    // Room for every boundary, the prepared references (float64 rows: 2 divergences × 2 layers)
    // and one and a half layers' parts.
    const int64_t cap = (shape.num_layers + 1) * boundary_bytes + 4 * 2 * boundary_bytes + parts_bytes * 3 / 2;
    LayerCache one_layer(*model, c.ids, c.mask, Plan(), cap);
    LayerCache uncached(*model, c.ids, c.mask, Plan(), 0);
    std::vector<int> moe = shape.moe_layers();
    ASSERT_GE(moe.size(), 2u);
    int n = 0;
    for (int layer : {moe[0], moe[1], moe[0]}) {
      for (const std::vector<int>& experts : std::vector<std::vector<int>>{{}, {0}, {2, 1}, {0, 1, 2, 3}}) {
        Plan plan;
        plan.set_layer(layer, LayerPlan{LayerOp::kCondense, experts, {}, {}});
        for (const char* divergence : {"js-hidden", "mse"}) {
          double summed = measure_objective(one_layer, divergence, "layer", plan);
          double plain = measure_objective(uncached, divergence, "layer", plan);
          EXPECT_GT(plain, 0);
          EXPECT_LE(std::abs(summed - plain), 1e-6 * plain) << family << " " << divergence << " " << plan.canonical();
          ++n;
        }
      }
    }
    EXPECT_EQ(n, 24);
    EXPECT_EQ(one_layer.stats().parts_computed, 3) << family << ": layer A, B (evicting A), A again (evicting B)";
    EXPECT_EQ(one_layer.stats().parts_evicted, 2);
    EXPECT_EQ(one_layer.stats().parts_hits, 21);
    // Each expert set's second divergence adds its last expert to the partial sum its first kept.
    EXPECT_EQ(one_layer.stats().partial_sum_hits, 9);
    EXPECT_EQ(one_layer.stats().parts_bytes, parts_bytes);
    EXPECT_LE(one_layer.stats().bytes, cap);
  }
}

// A greedy expert selection's rounds: each candidate is the incumbent plus one expert. The
// round's first two candidates show the cache the incumbent (what they share), and from the
// third on each adds a single expert to its kept sum (the first round's incumbent, no expert, is
// known from the first candidate); the values are those of the plain path (the condensed MLP).
TEST(LayerCache, GreedyRoundsAddOneExpertToTheIncumbentsSum) {
  auto model = model::MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  const ModelShape& shape = model->shape();
  Calibration c = calibration(shape.vocab_size);
  model->collect_router_stats(true);
  model->run_layers(model->embed(c.ids), c.mask, 0, int(shape.num_layers), Plan());
  model->collect_router_stats(false);
  LayerCache cached(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  LayerCache uncached(*model, c.ids, c.mask, Plan(), 0);
  const int layer = shape.moe_layers().at(0);
  int compared = 0;
  for (const std::vector<int>& incumbent : std::vector<std::vector<int>>{{}, {2}, {2, 0}}) {
    for (int e = 0; e < 4; ++e) {
      if (std::find(incumbent.begin(), incumbent.end(), e) != incumbent.end()) continue;
      std::vector<int> experts = incumbent;
      experts.push_back(e);
      Plan plan;
      plan.set_layer(layer, LayerPlan{LayerOp::kCondense, experts, {}, {}});
      double summed = measure_objective(cached, "js-hidden", "layer", plan);
      double plain = measure_objective(uncached, "js-hidden", "layer", plan);
      EXPECT_GT(plain, 0);
      EXPECT_LE(std::abs(summed - plain), 1e-6 * plain) << plan.canonical();
      ++compared;
    }
  }
  EXPECT_EQ(compared, 4 + 3 + 2);
  EXPECT_EQ(cached.stats().parts_computed, 1);
  EXPECT_EQ(cached.stats().partial_sum_hits, 3 + 1 + 0) << "every candidate of a round but its first two (the first: one)";
}

// Layer selection from the incumbent: a candidate runs from where it leaves the incumbent, and
// still measures against the ORIGINAL model's output: bitwise what the run from the base gives.
TEST(LayerCache, CandidatesRunFromTheIncumbentAgainstTheOriginal) {
  auto model = model::MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  Calibration c = calibration(96);
  std::vector<int> moe = model->shape().moe_layers();
  ASSERT_EQ(moe, (std::vector<int>{1, 2}));
  Plan incumbent;  // step 1's incumbent: the dense layer 0 dropped
  incumbent.set_layer(0, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  LayerCache fast(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  LayerCache plain(*model, c.ids, c.mask, Plan(), int64_t(1) << 30);
  int compared = 0;
  for (int step = 0; step < 2; ++step) {
    for (int layer : moe) {
      if (incumbent.layers().count(layer)) continue;
      Plan candidate = incumbent;
      candidate.set_layer(layer, LayerPlan{LayerOp::kCondense, {2, 3}, {0.3, 0.2}, {}});
      for (double fraction : {1.0, 0.5}) {
        EXPECT_EQ(measure_objective(fast, "js-logits", "model", candidate, fraction, &incumbent),
                  measure_objective(plain, "js-logits", "model", candidate, fraction))
            << candidate.canonical() << " on " << fraction;
        ++compared;
      }
      EXPECT_TRUE(at::equal(fast.final_hidden(candidate, -1, &incumbent), plain.final_hidden(candidate)));
    }
    incumbent.set_layer(1, LayerPlan{LayerOp::kCondense, {1}, {0.5}, {}});  // step 2 extends a two-layer incumbent
  }
  EXPECT_EQ(compared, 6);
  EXPECT_GT(fast.stats().incumbent_computed, 0);
  EXPECT_GT(fast.stats().incumbent_hits, 0);
  EXPECT_EQ(plain.stats().incumbent_computed, 0);
  EXPECT_NEAR(measure_objective(fast, "js-logits", "model", incumbent, 1.0, &incumbent),
              measure_objective(plain, "js-logits", "model", incumbent), 0.0)
      << "the incumbent itself, measured against the original, not against itself";
  EXPECT_GT(measure_objective(fast, "js-logits", "model", incumbent, 1.0, &incumbent), 0);
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
