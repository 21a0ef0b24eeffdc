// Residency::kLayers against kFull on every family's fixture and every plan of it: the same
// logits and the same materialised tensors, bit for bit, while holding at most the asked number
// of decoder layers (the rest read again when they come back), and keeping the layers whose
// tensors were handed out.
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/plan.h"
#include "model/moe_model.h"
#include "tests/test_device.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

class Residency : public ::testing::TestWithParam<std::string> {};

TEST_P(Residency, LayersGivesTheSameLogitsAndTensorsAsFull) {
  const std::string dir = kModels + "/" + GetParam();
  auto full = MoeModel::load(dir, testing::test_device());
  auto layered = MoeModel::load(dir, testing::test_device(), at::kFloat, model::Residency::kLayers, 1);
  EXPECT_EQ(full->residency(), model::Residency::kFull);
  EXPECT_EQ(layered->residency(), model::Residency::kLayers);
  EXPECT_EQ(layered->residency_stats().layer_reads, 0) << "kLayers reads no decoder layer at load";
  EXPECT_EQ(full->residency_stats().layer_reads, full->shape().num_layers);
  const int layers = full->shape().num_layers;
  at::Tensor ids = (at::arange(2 * 6, at::kLong).view({2, 6}) * 13 + 5) % full->shape().vocab_size;
  int plans = 0;
  for (const auto& file : std::filesystem::directory_iterator(dir + "/plans")) {
    const Plan plan = Plan::read_file(file.path().string());
    SCOPED_TRACE(file.path().filename().string());
    const int64_t reads_before = layered->residency_stats().layer_reads;
    EXPECT_TRUE(at::equal(full->logits(ids, {}, plan), layered->logits(ids, {}, plan)));
    int skipped = 0;  // drop_block layers: the forward never needs their weights
    for (const auto& [layer, lp] : plan.layers()) skipped += lp.op == LayerOp::kDropBlock;
    // One resident layer: each layer the forward uses is read once, but for the one left
    // resident by what ran before.
    const int64_t reads = layered->residency_stats().layer_reads - reads_before;
    EXPECT_LE(reads, layers - skipped);
    EXPECT_GE(reads, layers - skipped - 1);
    EXPECT_EQ(layered->residency_stats().resident, 1);
    std::vector<std::pair<std::string, at::Tensor>> expected;
    try {
      expected = full->materialise(plan);
    } catch (const Error& e) {  // a plan no checkpoint can hold (a group-limited router's prune): refused alike
      EXPECT_THROW(layered->materialise(plan), Error) << e.what();
      EXPECT_THROW(layered->materialise_layout(plan), Error) << e.what();
      ++plans;
      continue;
    }
    auto got = layered->materialise(plan);
    ASSERT_EQ(expected.size(), got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(expected[i].first, got[i].first);
      EXPECT_TRUE(at::equal(expected[i].second, got[i].second)) << got[i].first;
    }
    // The layout is the same entries, with no weight read.
    const int64_t reads_now = layered->residency_stats().layer_reads;
    auto layout = layered->materialise_layout(plan);
    EXPECT_EQ(layered->residency_stats().layer_reads, reads_now);
    ASSERT_EQ(layout.size(), got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(layout[i].name, got[i].first);
      EXPECT_FALSE(layout[i].tensor.defined());
      EXPECT_EQ(layout[i].entry.shape, got[i].second.sizes().vec()) << got[i].first;
    }
    ++plans;
  }
  EXPECT_GE(plans, 1);
  EXPECT_GT(layered->residency_stats().bytes_read, 0);
}

INSTANTIATE_TEST_SUITE_P(Families, Residency, ::testing::ValuesIn(testing::kGoldenModelFixtures));

TEST(ResidencyCap, HoldsTheMostRecentLayersAndWhatWasHandedOut) {
  const std::string dir = kModels + "/deepseek_gqa";
  auto model = MoeModel::load(dir, testing::test_device(), at::kFloat, model::Residency::kLayers, 2);
  const int layers = model->shape().num_layers;
  ASSERT_GE(layers, 3);
  at::Tensor ids = (at::arange(5, at::kLong).view({1, 5}) * 7 + 1) % model->shape().vocab_size;
  model->logits(ids, {}, Plan());
  EXPECT_EQ(model->residency_stats().layer_reads, layers);
  EXPECT_EQ(model->residency_stats().resident, 2);
  // The last two layers are held: running them again reads nothing.
  at::Tensor hidden = model->embed(ids);
  model->run_layers(hidden, at::Tensor(), layers - 2, layers, Plan());
  EXPECT_EQ(model->residency_stats().layer_reads, layers);
  model->run_layers(hidden, at::Tensor(), 0, 1, Plan());
  EXPECT_EQ(model->residency_stats().layer_reads, layers + 1);
}

// What an exporter asks of a layer the plan leaves alone is read tensor by tensor (one expert,
// not the layer); a condensed layer is read whole, once, to build its dense MLP.
TEST(ResidencyCap, MaterialisingReadsUntouchedLayersTensorByTensor) {
  auto model = MoeModel::load(kModels + "/deepseek_gqa", testing::test_device(), at::kFloat, model::Residency::kLayers, 1);
  const int64_t bytes_before = model->residency_stats().bytes_read;
  model->materialise(Plan());
  EXPECT_EQ(model->residency_stats().layer_reads, 0);
  EXPECT_EQ(model->residency_stats().resident, 0);
  EXPECT_GT(model->residency_stats().bytes_read, bytes_before);
  const int moe = model->shape().moe_layers().front();
  Plan condensed;
  condensed.set_layer(moe, LayerPlan{LayerOp::kCondense, {0, 1}, {0.5, 0.25}, 1.0});
  model->materialise(condensed);
  EXPECT_EQ(model->residency_stats().layer_reads, 1);
}

TEST(ResidencyCap, KeepsABlockHandedOutToBeTrained) {
  auto model = MoeModel::load(kModels + "/deepseek_gqa", testing::test_device(), at::kFloat, model::Residency::kLayers, 1);
  const int layers = model->shape().num_layers;
  at::Tensor ids = (at::arange(5, at::kLong).view({1, 5}) * 7 + 1) % model->shape().vocab_size;
  at::Tensor before = model->logits(ids, {}, Plan());
  const int moe = model->shape().moe_layers().front();
  auto block = model->moe_block_parameters(moe);
  ASSERT_FALSE(block.empty());
  {
    at::NoGradGuard no_grad;
    for (auto& [name, tensor] : block) tensor.mul_(0.5);
  }
  const int64_t reads = model->residency_stats().layer_reads;
  at::Tensor after = model->logits(ids, {}, Plan());
  EXPECT_FALSE(at::equal(before, after)) << "the halved block is the one the forward used";
  EXPECT_EQ(model->residency_stats().layer_reads - reads, layers - 1) << "the pinned layer is not read again";
  EXPECT_EQ(model->residency_stats().resident, 2) << "the last layer used and the pinned one";
}

}  // namespace
}  // namespace cdmoe::model
