// The condensed-layer cache under a cap: a long run of distinct condensed layers (what an
// expert-selection stage on the plain path asks for) keeps its memory flat and changes no
// output; what a trainer holds is never evicted; the parts of an MoE layer sum to its
// condensed output.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/moe_model.h"
#include "tests/test_device.h"

namespace cdmoe::model {
namespace {

const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

Plan condensed(int layer, std::vector<int> experts, std::vector<double> weights) {
  Plan plan;
  plan.set_layer(layer, LayerPlan{LayerOp::kCondense, std::move(experts), std::move(weights), 1.0});
  return plan;
}

TEST(CondensedCache, StaysUnderItsCapWithTheSameOutputs) {
  auto bounded = MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  auto unbounded = MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  const int layer = bounded->shape().moe_layers().front();
  at::Tensor ids = (at::arange(2 * 7, at::kLong).view({2, 7}) * 11 + 3) % bounded->shape().vocab_size;
  // One fused MLP with the shared expert and two kept experts; the cap holds three of them.
  bounded->logits(ids, {}, condensed(layer, {0, 1}, {0.5, 0.5}));
  const int64_t one = bounded->condensed_cache_stats().bytes;
  ASSERT_GT(one, 0);
  bounded->limit_condensed_cache(3 * one);
  const int experts = int(bounded->shape().num_routed_experts);
  int runs = 0;
  for (int a = 0; a < experts; ++a) {
    for (int b = a + 1; b < experts; ++b) {
      Plan plan = condensed(layer, {a, b}, {0.25 + 0.01 * a, 0.5});
      EXPECT_TRUE(at::equal(bounded->logits(ids, {}, plan), unbounded->logits(ids, {}, plan))) << plan.canonical();
      EXPECT_LE(bounded->condensed_cache_stats().bytes, 3 * one);
      ++runs;
    }
  }
  EXPECT_GT(runs, 5);
  EXPECT_LE(bounded->condensed_cache_stats().entries, 3);
  EXPECT_EQ(bounded->condensed_cache_stats().evicted, runs + 1 - 3);
  EXPECT_EQ(unbounded->condensed_cache_stats().entries, runs) << "the unbounded cache grows with every candidate";
}

TEST(CondensedCache, KeepsWhatATrainerHoldsAndWhatTheForwardUses) {
  auto model = MoeModel::load(kModels + "/deepseek_gqa", testing::test_device());
  std::vector<int> moe = model->shape().moe_layers();
  ASSERT_GE(moe.size(), 2u);
  at::Tensor ids = (at::arange(2 * 5, at::kLong).view({2, 5}) * 7 + 1) % model->shape().vocab_size;
  model->limit_condensed_cache(1);  // nothing fits
  Plan both = condensed(moe[0], {1}, {0.5});
  both.set_layer(moe[1], LayerPlan{LayerOp::kCondense, {2}, {0.5}, 1.0});
  at::Tensor before = model->logits(ids, {}, both);  // two layers in one forward: both kept while it runs
  EXPECT_EQ(model->condensed_cache_stats().entries, 2);
  auto trained = model->condensed_parameters(both);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, tensor] : trained) tensor.mul_(0.5);  // what a fine-tune does in place
  }
  model->logits(ids, {}, condensed(moe[0], {3}, {0.5}));  // others come and go
  model->logits(ids, {}, condensed(moe[1], {0}, {0.5}));
  at::Tensor after = model->logits(ids, {}, both);
  EXPECT_FALSE(at::allclose(before, after)) << "the trained (pinned) layers were kept, not rebuilt";
  model->forget_condensed(both);
  EXPECT_TRUE(at::equal(model->logits(ids, {}, both), before)) << "forgotten: rebuilt from the experts";
}

TEST(CondensedCache, MoeLayerPartsSumToTheCondensedOutput) {
  for (const char* family : {"deepseek_gqa", "qwen_sharded"}) {
    auto model = MoeModel::load(kModels + "/" + family, testing::test_device());
    const int layer = model->shape().moe_layers().back();
    at::Tensor ids = (at::arange(3 * 6, at::kLong).view({3, 6}) * 5 + 2) % model->shape().vocab_size;
    at::Tensor mask = at::ones({3, 6}, at::kLong);
    mask[2].narrow(0, 4, 2).fill_(0);
    at::Tensor input = model->run_layers(model->embed(ids), mask, 0, layer, Plan());
    MoeModel::MoeParts parts = model->moe_parts(input, mask, layer);
    ASSERT_EQ(parts.experts.size(0), model->shape().num_routed_experts);
    LayerPlan lp{LayerOp::kCondense, {3, 0}, {0.7, 0.2}, 0.9};
    Plan plan;
    plan.set_layer(layer, lp);
    MoeModel::CondenseWeights w = model->condense_weights(layer, lp);
    ASSERT_EQ(w.experts, (std::vector<double>{0.7, 0.2}));
    at::Tensor summed = parts.residual + parts.shared * w.shared + parts.experts[3] * 0.7 + parts.experts[0] * 0.2;
    at::Tensor direct = model->run_layers(input, mask, layer, layer + 1, plan);
    EXPECT_TRUE(at::allclose(summed, direct, 1e-5, 1e-6)) << family << ": max diff " << (summed - direct).abs().max().item<double>();
    Plan dropped;
    dropped.set_layer(layer, LayerPlan{LayerOp::kDrop, {}, {}, {}});
    EXPECT_TRUE(at::equal(parts.residual, model->run_layers(input, mask, layer, layer + 1, dropped)));
  }
}

}  // namespace
}  // namespace cdmoe::model
