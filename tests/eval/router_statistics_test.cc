// Router statistics over sequences of different lengths: padding never counts, batching changes
// nothing but the summation order, and a second measurement replaces the first.
#include "eval/router_statistics.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/plan.h"

namespace cdmoe::eval {
namespace {

const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

void expect_same(const model::RouterStats& a, const model::RouterStats& b, const std::string& what) {
  ASSERT_EQ(a.layers.size(), b.layers.size()) << what;
  for (const auto& [layer, stats] : a.layers) {
    const model::RouterStats::Layer& other = b.layers.at(layer);
    EXPECT_EQ(stats.tokens, other.tokens) << what << " layer " << layer;
    EXPECT_DOUBLE_EQ(stats.token_count, other.token_count) << what;
    EXPECT_NEAR(stats.shared_gate_sum, other.shared_gate_sum, 2e-6 * std::max(1.0, stats.shared_gate_sum)) << what;
    for (size_t e = 0; e < stats.weight_sum.size(); ++e) {
      EXPECT_NEAR(stats.weight_sum[e], other.weight_sum[e], 2e-6 * std::max(1.0, other.weight_sum[e])) << what << " expert " << e;
    }
  }
}

class RouterStatistics : public ::testing::TestWithParam<std::string> {};

TEST_P(RouterStatistics, CountValidTokensWhateverTheBatching) {
  auto model = model::MoeModel::load(kModels + "/" + GetParam());
  const int64_t vocab = model->shape().vocab_size;
  std::vector<std::vector<int64_t>> sequences;
  for (int64_t length : {3, 11, 6, 1}) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < length; ++t) ids.push_back((length * 31 + t * 17 + 3) % vocab);
    sequences.push_back(ids);
  }
  // Independently: each sequence alone through the plain forward, statistics accumulating.
  model->collect_router_stats(true);
  for (const auto& ids : sequences) model->logits(at::tensor(ids).view({1, -1}), at::Tensor(), Plan());
  model->collect_router_stats(false);
  const model::RouterStats alone = model->router_stats();
  const double tokens = 3 + 11 + 6 + 1;  // (float32 GEMMs round differently per batch shape: weights agree to 2e-6)
  for (const auto& [layer, stats] : alone.layers) {
    double routed = 0;
    for (double t : stats.tokens) routed += t;
    EXPECT_EQ(routed, tokens * double(model->shape().experts_per_token)) << "layer " << layer;
  }
  measure_router_statistics(*model, sequences, /*max_batch_tokens=*/1);
  expect_same(model->router_stats(), alone, "one sequence a batch");
  measure_router_statistics(*model, sequences, /*max_batch_tokens=*/1000);
  expect_same(model->router_stats(), alone, "one padded batch, measured again");
  measure_router_statistics(*model, sequences, /*max_batch_tokens=*/22);
  expect_same(model->router_stats(), alone, "two batches");
}

INSTANTIATE_TEST_SUITE_P(Families, RouterStatistics, ::testing::Values("deepseek_gqa", "qwen_sharded"));

}  // namespace
}  // namespace cdmoe::eval
