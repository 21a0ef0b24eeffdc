// finetune::Trainer against PyTorch (tests/fixtures/finetune/make_finetune_golden.py): three
// AdamW steps on the condensed layers of a tiny checkpoint give PyTorch's losses and weights;
// every other weight is bitwise unchanged; padding never counts; --train all moves every
// parameter (the router through the balance loss too).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comm/collective.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "finetune/trainer.h"
#include "model/moe_model.h"
#include "model/safetensors.h"

namespace cdmoe::finetune {
namespace {

const std::string kFixtures = CDMOE_TEST_FIXTURES;
const std::string kModel = kFixtures + "/model/deepseek_gqa";

at::Tensor long_tensor(const Json& rows) {
  std::vector<int64_t> flat;
  for (const Json& row : rows) {
    for (const Json& value : row) flat.push_back(value.get<int64_t>());
  }
  return at::tensor(flat, at::kLong).view({int64_t(rows.size()), -1});
}

Batch batch_of(const Json& json) {
  Batch batch{long_tensor(json["ids"]), long_tensor(json["valid"]), long_tensor(json["target"]), 0};
  batch.target_tokens = batch.target.narrow(1, 1, batch.target.size(1) - 1).sum().item<int64_t>();
  return batch;
}

std::map<std::string, at::Tensor> snapshot(const model::MoeModel& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : model.parameters()) out[name] = tensor.detach().clone();
  return out;
}

TEST(Trainer, ThreeAdamWStepsMatchPyTorch) {
  Json golden = read_json_file(kFixtures + "/finetune/case.json");
  auto model = model::MoeModel::load(kModel);
  auto before = snapshot(*model);
  TrainerOptions options;
  options.schedule = {golden["lr"].get<double>(), golden["warmup"].get<int64_t>(), Decay::kCosine,
                      golden["floor"].get<double>(), golden["steps"].get<int64_t>()};
  options.clip_norm = golden["clip"].get<double>();
  options.adamw.weight_decay = golden["weight_decay"].get<double>();
  auto single = comm::make_single_collective();
  Plan plan = Plan::from_json(golden["plan"], "case.json plan");
  {
    Trainer trainer(*model, plan, options, *single);
    EXPECT_EQ(trainer.trainable().size(), 6u);  // gate, up, down of two condensed layers
    for (size_t step = 0; step < golden["batches"].size(); ++step) {
      std::vector<Batch> micro;
      for (const Json& b : golden["batches"][step]) micro.push_back(batch_of(b));
      StepStats stats = trainer.step(micro);
      EXPECT_NEAR(stats.loss, golden["losses"][step].get<double>(), 1e-5) << "step " << step;
    }
    model::SafetensorsFile expected(kFixtures + "/finetune/expected.safetensors");
    ASSERT_EQ(expected.header().tensors.size(), trainer.trainable().size());
    for (const auto& [name, tensor] : trainer.trainable()) {
      const model::TensorInfo& info = expected.header().tensors.at(name);
      at::Tensor want = at::from_blob(const_cast<uint8_t*>(expected.tensor_data(info)), info.shape, at::kFloat);
      // AdamW's first steps are about lr·sign(g): an element whose gradient is at float32 noise
      // level moves by an arbitrary fraction of lr. PyTorch itself, rerun on another CPU (AMD
      // EPYC vs the machine that wrote the fixture), moves one such element 6.1e-5 differently
      // and every other within 7.5e-6. So: nearly all elements within 1e-5, at most two of a
      // tensor within 1e-3 (a twentieth of one step), on average within 1e-6.
      at::Tensor diff = (tensor.detach() - want).abs();
      EXPECT_LE(diff.gt(1e-5).sum().item<int64_t>(), 2) << name;
      EXPECT_LT(diff.max().item<double>(), 1e-3) << name;
      EXPECT_LT(diff.mean().item<double>(), 1e-6) << name;
    }
  }
  // Frozen weights (every tensor of the original model, experts included) are bitwise unchanged
  // and no longer require gradients.
  for (const auto& [name, tensor] : model->parameters()) {
    EXPECT_TRUE(at::equal(tensor, before.at(name))) << name;
    EXPECT_FALSE(tensor.requires_grad()) << name;
  }
  // The trained fused layers differ from freshly condensed ones.
  auto fresh = model::MoeModel::load(kModel);
  auto trained = model->condensed_parameters(plan);
  auto untrained = fresh->condensed_parameters(plan);
  for (size_t i = 0; i < trained.size(); ++i) {
    EXPECT_GT((trained[i].second - untrained[i].second).abs().max().item<double>(), 1e-3) << trained[i].first;
  }
}

TEST(Trainer, PaddingNeverCounts) {
  // One row of 6 tokens alone, and the same row right-padded to 9 beside a full row with no
  // target: the same loss, gradient and weights after a step (position 0 is never a target).
  Json golden = read_json_file(kFixtures + "/finetune/case.json");
  Plan plan = Plan::from_json(golden["plan"], "case.json plan");
  std::vector<int64_t> row = {5, 17, 33, 2, 80, 41};
  Batch alone{at::tensor(row, at::kLong).view({1, 6}), at::ones({1, 6}, at::kLong), at::ones({1, 6}, at::kLong), 5};
  std::vector<int64_t> padded_ids = {5, 17, 33, 2, 80, 41, 9, 9, 9, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  std::vector<int64_t> padded_valid = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  std::vector<int64_t> padded_target = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  Batch padded{at::tensor(padded_ids, at::kLong).view({2, 9}), at::tensor(padded_valid, at::kLong).view({2, 9}),
               at::tensor(padded_target, at::kLong).view({2, 9}), 5};
  TrainerOptions options;
  options.schedule = {1.0, 0, Decay::kConstant, 0, 1};
  // A large eps makes the first Adam step ≈ the gradient itself (lr·ĝ/(|ĝ|+1)), so the weights
  // compare gradients; with eps 1e-8 it would be lr·sign(ĝ), which rounding flips for ĝ ≈ 0.
  options.adamw.eps = 1.0;
  options.clip_norm = 0;
  auto single = comm::make_single_collective();
  auto a = model::MoeModel::load(kModel);
  auto b = model::MoeModel::load(kModel);
  Trainer ta(*a, plan, options, *single), tb(*b, plan, options, *single);
  auto [sum_a, tokens_a] = ta.evaluate({alone});
  auto [sum_b, tokens_b] = tb.evaluate({padded});
  EXPECT_EQ(tokens_a, 5);
  EXPECT_EQ(tokens_b, 5);
  EXPECT_NEAR(sum_a, sum_b, 1e-5);
  StepStats sa = ta.step({alone}), sb = tb.step({padded});
  EXPECT_NEAR(sa.loss, sb.loss, 1e-6);
  EXPECT_NEAR(sa.grad_norm, sb.grad_norm, 1e-6);
  for (size_t i = 0; i < ta.trainable().size(); ++i) {
    EXPECT_LT((ta.trainable()[i].second - tb.trainable()[i].second).abs().max().item<double>(), 1e-6);
  }
}

TEST(Trainer, MakeBatchPadsWithoutTargets) {
  TokenRow long_row{{4, 5, 6, 7}, {0, 1, 1, 1}}, short_row{{8, 9}, {0, 1}};
  Batch batch = make_batch({&long_row, &short_row}, at::kCPU);
  EXPECT_EQ(batch.target_tokens, 4);
  EXPECT_TRUE(at::equal(batch.valid, at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 0}, at::kLong).view({2, 4})));
  EXPECT_TRUE(at::equal(batch.target, at::tensor(std::vector<int64_t>{0, 1, 1, 1, 0, 1, 0, 0}, at::kLong).view({2, 4})));
}

TEST(Trainer, TrainAllMovesEveryParameterAndBalancesTheRouter) {
  auto model = model::MoeModel::load(kModel);
  auto before = snapshot(*model);
  TrainerOptions options;
  options.mode = TrainMode::kAll;
  options.schedule = {1e-2, 0, Decay::kConstant, 0, 1};
  options.balance_coefficient = 0.5;
  auto single = comm::make_single_collective();
  Json golden = read_json_file(kFixtures + "/finetune/case.json");
  StepStats stats;
  {
    Trainer trainer(*model, Plan(), options, *single);
    EXPECT_EQ(trainer.trainable().size(), model->parameters().size());
    stats = trainer.step({batch_of(golden["batches"][1][0])});
  }
  // Σ_e f_e·P_e is 1 per layer for a perfectly balanced router; two MoE layers here.
  EXPECT_GT(stats.balance_loss, 0.5);
  EXPECT_TRUE(std::isfinite(stats.balance_loss));
  for (const auto& [name, tensor] : model->parameters()) {
    EXPECT_FALSE(at::equal(tensor, before.at(name))) << name << " did not train";
  }
}

TEST(Trainer, Bfloat16WeightsStepThroughFloat32Masters) {
  auto model = model::MoeModel::load(kModel, at::kCPU, at::kBFloat16);
  Json golden = read_json_file(kFixtures + "/finetune/case.json");
  Plan plan = Plan::from_json(golden["plan"], "case.json plan");
  TrainerOptions options;
  options.schedule = {1e-3, 0, Decay::kConstant, 0, 2};
  auto single = comm::make_single_collective();
  Trainer trainer(*model, plan, options, *single);
  std::vector<at::Tensor> before;
  for (const auto& [name, tensor] : trainer.trainable()) before.push_back(tensor.detach().clone());
  for (int step = 0; step < 2; ++step) trainer.step({batch_of(golden["batches"][1][0])});
  auto state = trainer.optimizer().state();
  for (size_t i = 0; i < trainer.trainable().size(); ++i) {
    const at::Tensor& param = trainer.trainable()[i].second;
    const at::Tensor& master = state[3 * i].second;  // master, exp_avg, exp_avg_sq per parameter
    ASSERT_EQ(state[3 * i].first, "master/" + trainer.trainable()[i].first);
    EXPECT_EQ(param.scalar_type(), at::kBFloat16);
    EXPECT_EQ(master.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(param, master.to(at::kBFloat16)));  // the bf16 weight is the rounded master
    // Updates below bf16's resolution accumulate in the master instead of being lost.
    EXPECT_GT((master - before[i].to(at::kFloat)).abs().max().item<double>(), 0.0);
  }
}

TEST(Trainer, RefusesNothingToTrain) {
  auto model = model::MoeModel::load(kModel);
  auto single = comm::make_single_collective();
  Plan drop_only = Plan::parse(R"({"layers": {"1": {"op": "drop"}}})", "plan");
  EXPECT_THROW(Trainer(*model, drop_only, TrainerOptions(), *single), Error);
  TrainerOptions all;
  all.mode = TrainMode::kAll;
  EXPECT_THROW(Trainer(*model, drop_only, all, *single), Error);
}

TEST(Schedule, WarmupThenCosineOrLinearToTheFloor) {
  Schedule s{1.0, 2, Decay::kCosine, 0.1, 6};
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 2), 1.0);                                   // progress 0
  EXPECT_NEAR(learning_rate(s, 4), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.5)), 1e-12);  // 0.55
  EXPECT_GT(learning_rate(s, 5), 0.1);  // the last step still learns
  s.decay = Decay::kLinear;
  EXPECT_NEAR(learning_rate(s, 3), 0.1 + 0.9 * 0.75, 1e-12);
  s.decay = Decay::kConstant;
  EXPECT_DOUBLE_EQ(learning_rate(s, 5), 1.0);
  EXPECT_THROW(decay_named("step"), Error);
}

}  // namespace
}  // namespace cdmoe::finetune
