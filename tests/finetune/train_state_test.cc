// Fine-tuning checkpoints are checked whole before use (finetune/train_state.h): a flipped byte
// in any tensor, a renamed tensor, a step outside the run, a history that does not fit the step,
// a truncated file or another run's identity is refused naming the file, and a refused file
// leaves the optimizer untouched. The run loop (finetune/training_run.h) restarts from an
// unusable checkpoint when asked (a sweep's own working file), fails on a non-finite loss without
// checkpointing it, keeps its held-out losses with the steps they follow, and the ranks'
// identity check passes on one rank.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comm/collective.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "finetune/train_state.h"
#include "finetune/training_run.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

namespace cdmoe::finetune {
namespace {

const std::string kFixtures = CDMOE_TEST_FIXTURES;
const std::string kModel = kFixtures + "/model/deepseek_gqa";

// Four rows of 12 tokens over the fixture model's 96-token vocabulary, every token but the first a target.
TokenRows some_rows() {
  TokenRows rows;
  for (int r = 0; r < 4; ++r) {
    TokenRow row;
    for (int t = 0; t < 12; ++t) row.ids.push_back((r * 17 + t * 5) % 96), row.target.push_back(t > 0);
    rows.target_tokens += 11;
    rows.rows.push_back(row);
  }
  rows.content_hash = "rows";
  return rows;
}

struct Rig {
  std::unique_ptr<model::MoeModel> model = model::MoeModel::load(kModel);
  std::unique_ptr<comm::Collective> single = comm::make_single_collective();
  Plan plan = Plan::from_json(read_json_file(kFixtures + "/finetune/case.json")["plan"], "case.json plan");
  TrainerOptions options() const {
    TrainerOptions o;
    o.schedule = {1e-3, 0, Decay::kCosine, 0.0, 4};
    return o;
  }
};

RunOptions run_options(const std::string& path) {
  RunOptions run;
  run.batch_size = 2;
  run.lm_steps = 4;
  run.checkpoint_every = 1;
  run.state_path = path;
  run.identity = {{"run", "test"}};
  return run;
}

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

// A checkpoint of `steps` finished steps of the fixture run at `path`.
void train_to(const std::string& path, int64_t steps) {
  Rig s;
  Trainer trainer(*s.model, s.plan, s.options(), *s.single);
  TokenRows rows = some_rows();
  RunOptions run = run_options(path);
  run.lm_steps = steps;
  static const std::atomic<int> never{0};
  run_training(trainer, {&rows, nullptr, nullptr}, run, {}, never);
  ASSERT_TRUE(std::filesystem::exists(path));
}

// The checkpoint's JSON metadata, edited, written back around the same tensors.
void edit_state(const std::string& path, const std::function<void(Json&)>& edit) {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
  {
    model::SafetensorsFile file(path);
    for (const auto& [name, info] : file.header().tensors) {
      tensors[name] = at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat).clone();
    }
    metadata = file.header().metadata;
  }
  Json state = Json::parse(metadata.at("cdmoe_train_state"));
  edit(state);
  metadata["cdmoe_train_state"] = state.dump();
  std::vector<model::TensorToWrite> out;
  for (auto& [name, t] : tensors) out.push_back({name, model::DType::kF32, t.sizes().vec(), t.data_ptr<float>()});
  model::write_safetensors(path, out, metadata);
}

TEST(TrainState, DamagedOrForeignCheckpointsAreRefusedNamingTheFile) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  train_to(path, 2);
  const Json identity = run_options(path).identity;
  ASSERT_TRUE(check_train_state(path, identity, 4).has_value());
  EXPECT_EQ(check_train_state(path, identity, 4)->step, 2);
  EXPECT_FALSE(check_train_state(dir.file("none.safetensors"), identity, 4).has_value());
  const std::string good = testing::read_file(path);

  // One flipped bit in the middle of the tensors.
  std::string flipped = good;
  flipped[flipped.size() - flipped.size() / 3] ^= 0x10;
  testing::write_file(path, flipped);
  std::string message = refusal([&] { check_train_state(path, identity, 4); });
  EXPECT_NE(message.find(path + ": the checkpoint's tensors do not match their checksum"), std::string::npos) << message;

  // Truncated (a partial copy).
  testing::write_file(path, good.substr(0, good.size() - 100));
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find(path), std::string::npos);

  // Positions that do not fit the run or the history.
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s["step"] = -5; });
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find("is at step -5, outside this run's 0..4"), std::string::npos);
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s["step"] = 999999; });
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find("is at step 999999"), std::string::npos);
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s["step"] = 3; });
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find("one entry per step"), std::string::npos);
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s["tokens"] = s["tokens"].get<int64_t>() + 1; });
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find("is not the sum of its steps'"), std::string::npos);
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s["format"] = 1; });
  EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find("another cdmoe version"), std::string::npos);
  // Another run's.
  testing::write_file(path, good);
  EXPECT_NE(refusal([&] { check_train_state(path, Json{{"run", "other"}}, 4); })
                .find("belongs to another run: its run is \"test\", this run's is \"other\""),
            std::string::npos);
}

TEST(TrainState, ARefusedCheckpointLeavesTheOptimizerAsItWas) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  train_to(path, 2);
  // A sound checkpoint (same identity here) whose tensors have other shapes than the optimizer
  // of another plan: refused when the shapes are compared, before any tensor is copied.
  Rig s;
  Plan other = Plan::from_json(Json::parse(R"({"layers": {"1": {"op": "condense", "experts": [1, 3, 4], "weights": [0.6, 0.3, 0.1]},
                                                         "2": {"op": "condense", "experts": [5], "weights": [0.5]}}})"),
                               "other plan");
  Trainer trainer(*s.model, other, s.options(), *s.single);
  std::vector<at::Tensor> before;
  for (const auto& [name, t] : trainer.optimizer().state()) before.push_back(t.clone());
  std::string message = refusal([&] { load_train_state(path, trainer.optimizer(), run_options(path).identity, 4); });
  EXPECT_NE(message.find("has shape"), std::string::npos) << message;
  size_t i = 0;
  for (const auto& [name, t] : trainer.optimizer().state()) EXPECT_TRUE(at::equal(t, before[i++])) << name;
}

TEST(TrainingRun, AnUnusableCheckpointIsStartedOverWhenAskedAndRefusedOtherwise) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  train_to(path, 2);
  std::string bytes = testing::read_file(path);
  bytes[bytes.size() - 7] ^= 0x01;
  testing::write_file(path, bytes);
  static const std::atomic<int> never{0};
  TokenRows rows = some_rows();
  {
    Rig s;
    Trainer trainer(*s.model, s.plan, s.options(), *s.single);
    EXPECT_NE(refusal([&] { run_training(trainer, {&rows, nullptr, nullptr}, run_options(path), {}, never); })
                  .find("do not match their checksum"),
              std::string::npos);
  }
  Rig s;
  Trainer trainer(*s.model, s.plan, s.options(), *s.single);
  RunOptions run = run_options(path);
  run.restart_unusable_checkpoint = true;
  RunOutcome outcome = run_training(trainer, {&rows, nullptr, nullptr}, run, {}, never);
  EXPECT_EQ(outcome.resumed_from, 0);
  EXPECT_EQ(outcome.position.step, 4);
  EXPECT_NE(outcome.discarded_checkpoint.find("checksum"), std::string::npos) << outcome.discarded_checkpoint;
  EXPECT_EQ(check_train_state(path, run.identity, 4)->step, 4) << "a fresh, valid checkpoint replaced it";
}

TEST(TrainingRun, ANonFiniteLossFailsTheRunWithoutCheckpointingIt) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  Rig s;
  TrainerOptions options = s.options();
  options.schedule.lr = 1e30;  // the training tool refuses this; the loop must survive it anyway
  options.clip_norm = 0;
  Trainer trainer(*s.model, s.plan, options, *s.single);
  TokenRows rows = some_rows();
  static const std::atomic<int> never{0};
  RunOptions run = run_options(path);
  run.lm_steps = 4;
  try {
    run_training(trainer, {&rows, nullptr, nullptr}, run, {}, never);
    FAIL() << "trained to non-finite weights";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
  if (std::filesystem::exists(path)) {
    // Only a checkpoint of finite weights may exist (one written before the weights broke).
    model::SafetensorsFile file(path);
    for (const auto& [name, info] : file.header().tensors) {
      at::Tensor t = at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat);
      EXPECT_TRUE(t.isfinite().all().item<bool>()) << name;
    }
  }
}

// Held-out losses live in the checkpoint with the steps they follow: a run resumed from step 2
// keeps the evaluation after step 2, and one resumed with other held-out text keeps both, by
// their hashes; the last step evaluated again (a run killed before its model files) replaces
// its measurement. Entries that do not fit the position are refused.
TEST(TrainingRun, HeldOutLossesAreCheckpointedWithTheirStepsAndText) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  static const std::atomic<int> never{0};
  TokenRows rows = some_rows();
  TokenRows held_a = some_rows(), held_b = some_rows();
  held_a.content_hash = "text-a", held_b.content_hash = "text-b";
  held_b.rows.resize(2);
  std::vector<std::pair<int64_t, double>> reported;
  RunCallbacks callbacks;
  callbacks.on_eval = [&](int64_t step, double loss, int64_t) { reported.push_back({step, loss}); };
  auto run_until = [&](int64_t steps, const TokenRows& held_out) {
    Rig s;
    Trainer trainer(*s.model, s.plan, s.options(), *s.single);
    RunOptions run = run_options(path);
    run.lm_steps = 4;
    run.eval_every = 2;
    std::atomic<int> stop{0};
    RunCallbacks stop_at = callbacks;
    stop_at.on_step = [&](int64_t step, const StepStats&) { if (step + 1 == steps) stop = 15; };
    return run_training(trainer, {&rows, nullptr, &held_out}, run, stop_at, steps < 4 ? stop : never);
  };
  RunOutcome first = run_until(2, held_a);  // stopped after step 2, evaluated after it
  EXPECT_TRUE(first.stopped);
  ASSERT_EQ(reported.size(), 1u);
  std::optional<TrainPosition> stored = check_train_state(path, run_options(path).identity, 4);
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->held_out_losses().size(), 1u);
  EXPECT_EQ(stored->held_out_losses()[0].after_steps, 2);
  EXPECT_EQ(stored->held_out_losses()[0].data_hash, "text-a");
  EXPECT_EQ(stored->held_out_losses()[0].loss, reported[0].second);
  EXPECT_GT(stored->held_out_losses()[0].tokens, 0);

  RunOutcome rest = run_until(4, held_b);  // resumed with other held-out text: evaluated after step 4
  EXPECT_EQ(rest.resumed_from, 2);
  std::vector<HeldOutLoss> losses = check_train_state(path, run_options(path).identity, 4)->held_out_losses();
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[1].after_steps, 4);
  EXPECT_EQ(losses[1].data_hash, "text-b");
  EXPECT_EQ(losses[1].loss, reported.back().second);
  EXPECT_EQ(losses[1].tokens, 2 * 11);

  RunOutcome again = run_until(4, held_b);  // at the last step already: evaluated again, replaced
  EXPECT_EQ(again.resumed_from, 4);
  EXPECT_EQ(check_train_state(path, run_options(path).identity, 4)->held_out_losses().size(), 2u);

  const std::string good = testing::read_file(path);
  const Json identity = run_options(path).identity;
  for (const Json& bad : {Json::array({Json::array({5, 1.0, 10, "x"})}),  // after a step not done
                          Json::array({Json::array({0, 1.0, 10, "x"})}),  // before any step
                          Json::array({Json::array({2, 1.0, 10, "x"}), Json::array({2, 1.5, 10, "x"})}),  // twice
                          Json::array({Json::array({2, "1.0", 10, "x"})}),
                          Json::array({Json::array({2, 1.0, -1, "x"})}),
                          Json::array({Json::array({2, 1.0, 10})}),
                          Json("none")}) {
    testing::write_file(path, good);
    edit_state(path, [&](Json& s) { s["held_out"] = bad; });
    EXPECT_NE(refusal([&] { check_train_state(path, identity, 4); }).find(path + ": the checkpoint's held-out loss"),
              std::string::npos) << bad.dump();
  }
  testing::write_file(path, good);
  edit_state(path, [](Json& s) { s.erase("held_out"); });
  EXPECT_TRUE(check_train_state(path, identity, 4)->held_out_losses().empty()) << "a checkpoint without any has none";
}

TEST(TrainingRun, OneRankAlwaysAgreesWithItself) {
  Rig s;
  Trainer trainer(*s.model, s.plan, s.options(), *s.single);
  EXPECT_NO_THROW(check_same_identity_on_every_rank(trainer, Json{{"steps", 3}}));
}

}  // namespace
}  // namespace cdmoe::finetune
