// A sweep's fine-tune task on a real Worker: a data file changed since the sweep started is
// refused (the candidate fails, naming the file); a checkpoint found in a moved checkpoint
// folder resumes (the run's identity holds no path); a damaged one is started over.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/finetune_task.h"
#include "core/error.h"
#include "core/sha256.h"
#include "finetune/trained_tensors.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/synthetic_checkpoint.h"
#include "tests/test_util.h"
#include "worker/worker.h"

namespace cdmoe::worker {
namespace {

namespace fs = std::filesystem;
const std::string kSource = CDMOE_SOURCE_DIR;

class WorkerFinetune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    model::SyntheticShape shape;
    shape.hidden = 32, shape.heads = 4, shape.layers = 3, shape.experts = 6, shape.expert_inner = 16;
    shape.shared = 1, shape.top_k = 2, shape.dense_inner = 48, shape.seed = 3;
    shape.tokenizer = kSource + "/third_party/tokenizers/llama2/tokenizer.json";
    write_synthetic_checkpoint(dir_->file("model"), shape);
    std::string text;
    for (int i = 0; i < 12; ++i) text += "Line " + std::to_string(i) + ": the condensed layer trains on this text, a line at a time.\n";
    testing::write_file(dir_->file("data.txt"), text);
  }
  static void TearDownTestSuite() { delete dir_; }

  static WorkerOptions options(const std::atomic<int>* stop) {
    WorkerOptions o;
    o.model_dir = dir_->file("model");
    o.calib_path = kSource + "/examples/calibration.jsonl";
    o.calib = eval::CalibrationOptions{4, 16, false, 0};
    o.batch_size = 2;
    o.speed.min_pairs = 1;
    o.speed.max_seconds = 0;
    o.stop = stop;
    return o;
  }

  // The fine-tune of candidate 7: two condensed layers, 4 steps, a checkpoint after every step.
  static Task finetune_task(const std::string& state_dir, const std::string& artifact_dir) {
    FinetuneTask spec;
    spec.data = dir_->file("data.txt");
    spec.data_hash = sha256_hex(testing::read_file(spec.data));
    spec.steps = 4;
    spec.lr = 1e-3;
    spec.batch_size = 2;
    spec.seq_len = 16;
    spec.checkpoint_every = 1;
    spec.state_dir = state_dir;
    spec.artifact_dir = artifact_dir;
    return Task{7, "finetune", Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[0,4]},"2":{"op":"condense","experts":[]}}})", "p"),
                spec.to_params(), 1};
  }

  static std::map<std::string, double> metrics_of(const Result& result) {
    std::map<std::string, double> out;
    for (const Metric& m : result.metrics) out[m.name] = m.value;
    return out;
  }

  static testing::TempDir* dir_;
};

testing::TempDir* WorkerFinetune::dir_ = nullptr;

TEST_F(WorkerFinetune, DataChangedSinceTheSweepStartedFailsTheCandidate) {
  testing::TempDir state;
  Worker worker(options(nullptr), 1);
  Task task = finetune_task(state.path(), state.file("artifacts"));
  task.params["data_hash"] = sha256_hex("the file as it was when the sweep started");
  Result result = worker.run(task);
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.error.find("--finetune-data " + dir_->file("data.txt") + " has changed since the sweep started"), std::string::npos)
      << result.error;
  EXPECT_TRUE(fs::is_empty(state.path())) << "nothing trained";
}

TEST_F(WorkerFinetune, AMovedCheckpointFolderResumesAndADamagedCheckpointStartsOver) {
  testing::TempDir place;
  const std::string first = place.file("r.db.finetune"), moved = place.file("moved/r.db.finetune");
  std::atomic<int> stop{1};  // a stop signal already: the fine-tune checkpoints after its first step
  {
    Worker worker(options(&stop), 1);
    Result stopped = worker.run(finetune_task(first, place.file("r.db.artifacts")));
    EXPECT_FALSE(stopped.ok);
    EXPECT_NE(stopped.error.find("stopped by a signal after step 1"), std::string::npos) << stopped.error;
    EXPECT_TRUE(stopped.artifacts.empty()) << "a stopped fine-tune keeps no trained tensors";
  }
  ASSERT_TRUE(fs::exists(first + "/candidate-7.safetensors"));
  fs::create_directories(place.file("moved"));
  fs::rename(first, moved);
  stop = 0;
  Worker worker(options(&stop), 1);
  const std::string artifacts = place.file("moved/r.db.artifacts");
  Result resumed = worker.run(finetune_task(moved, artifacts));
  ASSERT_TRUE(resumed.ok) << resumed.error;
  EXPECT_EQ(metrics_of(resumed).at("finetune_resumed_from"), 1) << "resumed where the checkpoint stood, from the moved folder";
  EXPECT_EQ(resumed.finetune_steps.size(), 4u);
  // The trained tensors are kept beside the checkpoints' folder, named by their content, their
  // path relative to the folder holding both (the database's).
  ASSERT_EQ(resumed.artifacts.size(), 1u);
  const Artifact& kept = resumed.artifacts[0];
  EXPECT_EQ(kept.kind, "trained_tensors");
  EXPECT_EQ(kept.path.rfind("r.db.artifacts/trained-", 0), 0u) << kept.path;
  EXPECT_EQ(sha256_file(place.file("moved/" + kept.path)), kept.sha256);
  EXPECT_EQ(int64_t(fs::file_size(place.file("moved/" + kept.path))), kept.bytes);

  // Damaged: one flipped bit in the tensors. The sweep's own working file is started over, not
  // a reason to fail the candidate for good.
  const std::string checkpoint = moved + "/candidate-7.safetensors";
  std::string bytes = testing::read_file(checkpoint);
  bytes[bytes.size() - 5] ^= 0x02;
  testing::write_file(checkpoint, bytes);
  Result restarted = worker.run(finetune_task(moved, artifacts));
  ASSERT_TRUE(restarted.ok) << restarted.error;
  EXPECT_EQ(metrics_of(restarted).at("finetune_resumed_from"), 0);
  ASSERT_EQ(restarted.finetune_steps.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(restarted.finetune_steps[i].loss, resumed.finetune_steps[i].loss) << "step " << i;
  // The same training gives the same bytes: one file, named once.
  ASSERT_EQ(restarted.artifacts.size(), 1u);
  EXPECT_EQ(restarted.artifacts[0].sha256, kept.sha256);
  EXPECT_EQ(std::distance(fs::directory_iterator(artifacts), fs::directory_iterator()), 1);
}

// The kept tensors put the trained model back into a fresh one, and only into the model and
// plan they were trained for: another plan, or a file that is not such a file, is refused.
TEST_F(WorkerFinetune, KeptTensorsApplyToTheirPlanOnly) {
  testing::TempDir place;
  Result trained;
  std::vector<ExpertRouting> routing;  // the weights condense ops without their own take, as a sweep records them
  {
    Worker worker(options(nullptr), 1);
    trained = worker.run(finetune_task(place.file("r.db.finetune"), place.file("r.db.artifacts")));
    routing = worker.routing();
  }
  ASSERT_TRUE(trained.ok) << trained.error;
  ASSERT_EQ(trained.artifacts.size(), 1u);
  const std::string path = place.file(trained.artifacts[0].path), sha = trained.artifacts[0].sha256;
  const Task task = finetune_task(place.file("r.db.finetune"), place.file("r.db.artifacts"));

  auto load = [&] {
    auto model = model::MoeModel::load(dir_->file("model"));
    model->set_router_stats(model::RouterStats::from_rows(routing, model->shape(), "routing"));
    return model;
  };
  auto fresh = load();
  finetune::apply_trained_tensors(*fresh, task.plan, path, sha, "candidate 7");
  const model::SafetensorsFile file(path);
  const std::vector<std::pair<std::string, at::Tensor>> condensed = fresh->condensed_parameters(task.plan);
  ASSERT_EQ(condensed.size(), file.header().tensors.size());
  for (const auto& [name, tensor] : condensed) {
    const model::TensorInfo& info = file.header().tensors.at(name);
    at::Tensor kept = at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat);
    EXPECT_TRUE(at::equal(tensor, kept)) << name;
  }

  auto refused = [&](const Plan& plan, const std::string& file_path, const std::string& says) {
    auto model = load();
    try {
      finetune::apply_trained_tensors(*model, plan, file_path, sha256_file(file_path), "candidate 7");
      ADD_FAILURE() << "applied: " << says;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused(Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[0,4]}}})", "p"), path, "was trained for another plan");
  // Right plan, wrong tensors: one of them only.
  const std::string partial = place.file("partial.safetensors");
  const auto& [first, first_tensor] = condensed.front();
  at::Tensor host = first_tensor.detach().contiguous();
  model::write_safetensors(partial, {{first, model::DType::kF32, host.sizes().vec(), host.data_ptr()}},
                           {{"cdmoe_trained", Json{{"train", "condensed"}, {"layers", Json::array()}, {"plan_hash", task.plan.hash()}}.dump()}});
  refused(task.plan, partial, "holds 1 tensors; training condensed makes " + std::to_string(condensed.size()) + " trainable");
  model::write_safetensors(partial, {{first, model::DType::kF32, host.sizes().vec(), host.data_ptr()}});
  refused(task.plan, partial, "is not a cdmoe trained-tensors file");
}

}  // namespace
}  // namespace cdmoe::worker
