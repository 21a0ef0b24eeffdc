// The tensor table (core/tensor_table.h): its order, its two expert layouts and what each plan
// op leaves. The shapes themselves are checked where they meet real files: the header check and
// load of every golden fixture, and export (analytic count = Σ numel written).
#include "core/tensor_table.h"

#include <gtest/gtest.h>

#include <utility>

#include "core/model_shape.h"
#include "core/plan.h"

namespace cdmoe {
namespace {

// A dense layer, then two MoE layers of 4 experts (inner 3) with a shared MLP (inner 6), the
// sigmoid router's bias and a shared-expert gate: every MoE-block role in one model.
ModelShape toy_shape() {
  ModelShape s;
  s.model_type = "toy";
  s.num_layers = 3;
  s.hidden_size = 8;
  s.vocab_size = 16;
  s.num_attention_heads = 2;
  s.num_key_value_heads = 1;
  s.head_dim = 4;
  s.dense_intermediate_size = 12;
  s.expert_intermediate_size = 3;
  s.shared_intermediate_size = 6;
  s.num_routed_experts = 4;
  s.experts_per_token = 2;
  s.router = RouterKind::kSigmoidGroups;
  s.shared_expert_gate = true;
  s.layer_kinds = {LayerKind::kDense, LayerKind::kMoe, LayerKind::kMoe};
  return s;
}

std::vector<TensorEntry> of_layer(const std::vector<TensorEntry>& table, int layer) {
  std::vector<TensorEntry> out;
  for (const TensorEntry& entry : table) {
    if (entry.layer == layer) out.push_back(entry);
  }
  return out;
}

int64_t numel_of(const std::vector<TensorEntry>& entries) {
  int64_t n = 0;
  for (const TensorEntry& entry : entries) n += entry.numel();
  return n;
}

TEST(TensorTable, PerExpertTensorsExpandExpertMajorAsCheckpointsStoreThem) {
  using R = TensorRole;
  std::vector<std::pair<R, int64_t>> seen;
  for_each_tensor(of_layer(model_tensors(toy_shape(), Plan()), 1),
                  [&](const TensorEntry& entry, int64_t expert) { seen.emplace_back(entry.role, expert); });
  std::vector<std::pair<R, int64_t>> expected = {{R::kInputNorm, -1}, {R::kQ, -1}, {R::kK, -1}, {R::kV, -1}, {R::kO, -1},
                                                 {R::kPostNorm, -1}, {R::kRouter, -1}, {R::kRouterBias, -1}};
  for (int64_t e = 0; e < 4; ++e) {
    for (R role : {R::kExpertGate, R::kExpertUp, R::kExpertDown}) expected.emplace_back(role, e);
  }
  for (R role : {R::kSharedGate, R::kSharedUp, R::kSharedDown, R::kSharedExpertGate}) expected.emplace_back(role, -1);
  EXPECT_EQ(seen, expected);
}

TEST(TensorTable, BothExpertLayoutsHoldTheSameElements) {
  const ModelShape s = toy_shape();
  const std::vector<TensorEntry> per_expert = model_tensors(s, Plan()), fused = model_tensors(s, Plan(), ExpertLayout::kFused);
  for (int layer = 0; layer < s.num_layers; ++layer) {
    EXPECT_EQ(numel_of(of_layer(per_expert, layer)), numel_of(of_layer(fused, layer))) << "layer " << layer;
  }
  bool found = false;
  for (const TensorEntry& entry : of_layer(fused, 2)) {
    EXPECT_EQ(entry.per_expert, 0) << "a fused layer has no per-expert tensors";
    if (entry.role == TensorRole::kFusedExpertGateUp) {
      found = true;
      EXPECT_EQ(entry.shape, (std::vector<int64_t>{4, 6, 8}));  // [E, 2I, D]
    }
  }
  EXPECT_TRUE(found);
}

TEST(TensorTable, EachPlanOpLeavesWhatExportWrites) {
  const ModelShape s = toy_shape();
  Plan plan;
  plan.set_layer(1, LayerPlan{LayerOp::kPrune, {0, 2}, {}, {}});
  plan.set_layer(2, LayerPlan{LayerOp::kCondense, {1, 3}, {}, {}});
  const std::vector<TensorEntry> table = model_tensors(s, plan, ExpertLayout::kFused);
  for (const TensorEntry& entry : of_layer(table, 1)) {  // pruned: per expert even in a fused checkpoint, renumbered
    EXPECT_NE(entry.role, TensorRole::kFusedExpertGateUp);
    if (entry.role == TensorRole::kRouter) {
      EXPECT_EQ(entry.shape, (std::vector<int64_t>{2, 8}));
    }
    if (entry.role == TensorRole::kExpertGate) {
      EXPECT_EQ(entry.per_expert, 2);
    }
  }
  const std::vector<TensorEntry> condensed = of_layer(table, 2);
  for (const TensorEntry& entry : condensed) EXPECT_FALSE(entry.role == TensorRole::kRouter || is_routed_expert(entry.role));
  ASSERT_GE(condensed.size(), 3u);
  EXPECT_EQ(condensed[condensed.size() - 3].role, TensorRole::kMlpGate);
  EXPECT_EQ(condensed[condensed.size() - 3].shape, (std::vector<int64_t>{6 + 2 * 3, 8}));  // shared + 2 experts, fused

  Plan dropping;
  dropping.set_layer(1, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  dropping.set_layer(2, LayerPlan{LayerOp::kDropBlock, {}, {}, {}});
  const std::vector<TensorEntry> dropped = model_tensors(s, dropping);
  EXPECT_TRUE(of_layer(dropped, 2).empty());
  for (const TensorEntry& entry : of_layer(dropped, 1)) {
    EXPECT_TRUE(entry.role == TensorRole::kInputNorm || is_attention(entry.role)) << "drop keeps the attention only";
  }
  EXPECT_EQ(of_layer(dropped, 1).size(), attention_tensors(s, 1).size() + 1);
}

TEST(TensorTable, TiedEmbeddingsHaveNoHead) {
  ModelShape s = toy_shape();
  s.tie_word_embeddings = true;
  for (const TensorEntry& entry : model_tensors(s, Plan())) EXPECT_NE(entry.role, TensorRole::kLmHead);
}

}  // namespace
}  // namespace cdmoe
