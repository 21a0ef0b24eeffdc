// The device plumbing, checked on a device other than the CPU on a machine without a GPU.
// libtorch's lazy tensor backend (TorchScript, computing on the CPU) provides the device "lazy";
// a CPU tensor meeting one of its tensors in an operation stops the process (a CHECK failure),
// where next to a CUDA tensor it would raise. A whole Worker on that device (load, calibration,
// layer cache, router statistics, search objectives, full evaluation) must measure what a CPU
// Worker measures, in float32 and in bfloat16 (the CUDA default), each within what its arithmetic
// promises when the two take other kernels (tolerance() below). What this cannot check: CUDA kernels, timing that waits for the device, the
// caching allocator's peak (README, "On GPUs").
#include <filesystem>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/param_count.h"
#include "eval/divergence.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/synthetic_checkpoint.h"
#include "tests/test_device.h"
#include "tests/test_util.h"
#include "worker/worker.h"

namespace cdmoe::worker {
namespace {

const std::string kSource = CDMOE_SOURCE_DIR;

class SecondDevice : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    model::SyntheticShape shape;
    shape.hidden = 32, shape.heads = 4, shape.layers = 3, shape.experts = 6, shape.expert_inner = 16;
    shape.shared = 1, shape.top_k = 2, shape.dense_inner = 48, shape.bf16 = true, shape.seed = 3;
    shape.tokenizer = kSource + "/third_party/tokenizers/llama2/tokenizer.json";
    write_synthetic_checkpoint(dir_->file("model"), shape);
  }
  static void TearDownTestSuite() { delete dir_; }

  static WorkerOptions options(const std::string& device, const std::string& dtype) {
    WorkerOptions o;
    o.model_dir = dir_->file("model");
    o.calib_path = kSource + "/examples/calibration.jsonl";
    o.calib = eval::CalibrationOptions{6, 24, false, 0};
    o.held_out_path = o.calib_path;
    o.tasks = {kSource + "/examples/tiny_task.jsonl"};
    o.batch_size = 2;
    o.speed.min_pairs = 1;
    o.speed.max_seconds = 0;
    o.device = device;
    o.dtype = dtype;
    return o;
  }

  static testing::TempDir* dir_;
};

testing::TempDir* SecondDevice::dir_ = nullptr;

std::map<std::string, double> metrics_of(const Result& result) {
  EXPECT_TRUE(result.ok) << result.error;
  std::map<std::string, double> out;
  for (const Metric& m : result.metrics) out[m.name] = m.value;
  return out;
}

// What the two workers may differ by. Both run libtorch's CPU kernels, but not necessarily the
// same ones (the lazy backend lowers through TorchScript; oneDNN, OpenBLAS and ATen pick kernels
// per CPU), so each operation may round differently: by float32's last bits, or by a whole unit
// in the last place of bfloat16's 8-bit significand (2^-8 relative). Through a forward of a few
// layers that compounds: float32 within 1e-6 relative, bfloat16 within 8 such units (2^-5),
// and router choices between near-tied experts may go either way in bfloat16.
double tolerance(const std::string& dtype) { return dtype == "bfloat16" ? 0x1p-5 : 1e-6; }
bool near(double got, double want, double relative) { return std::abs(got - want) <= relative * std::max(1e-9, std::abs(want)); }

TEST_P(SecondDevice, AWorkerThereMeasuresWhatACpuWorkerMeasures) {
  const std::string dtype = GetParam();
  Worker cpu(options("cpu", dtype), 1), lazy(options(testing::lazy_device().str(), dtype), 1);
  ASSERT_EQ(lazy.device(), "lazy");
  ASSERT_EQ(lazy.dtype(), dtype);
  model::Checkpoint checkpoint(dir_->file("model"));
  const int64_t original_parameters =
      count_parameters(model::model_config_from_json(checkpoint.config(), checkpoint.config_path()).shape, Plan()).total();

  // Router statistics from the start-up forward (they feed condense ops without weights).
  std::vector<ExpertRouting> a = cpu.routing(), b = lazy.routing();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  const double relative = tolerance(dtype);
  for (size_t i = 0; i < a.size(); ++i) {
    if (dtype == "float32") {
      EXPECT_EQ(a[i].tokens, b[i].tokens) << i;
    } else {  // a near-tie may route a token or two elsewhere
      EXPECT_LE(std::abs(a[i].tokens - b[i].tokens), std::max(2.0, 0.02 * a[i].tokens)) << i;
    }
    EXPECT_TRUE(near(b[i].average_weight, a[i].average_weight, relative)) << i;
  }

  std::vector<Plan> plans = {
      Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[0,4]}}})", "p"),  // weights from the router statistics
      Plan::parse(R"({"layers":{"2":{"op":"prune","experts":[1,2,5]}}})", "p"),
      Plan::parse(R"({"layers":{"2":{"op":"drop"}}})", "p")};
  int64_t id = 0;
  for (const Plan& plan : plans) {
    for (const char* divergence : {"js-logits", "kl", "js-hidden", "mse", "cosine"}) {
      for (const char* scope : {"layer", "model"}) {
        for (double fraction : {1.0, 0.5}) {
          if (fraction < 1 && std::string(divergence) != "js-logits") continue;  // screens: one objective is enough
          Task task{++id, "search", plan, {{"divergence", divergence}, {"scope", scope}, {"calib_fraction", fraction},
                                           {"metric", "objective"}}, 1};
          double want = metrics_of(cpu.run(task)).at("objective"), got = metrics_of(lazy.run(task)).at("objective");
          EXPECT_GT(want, 0) << divergence << " " << scope << " " << plan.canonical();
          EXPECT_TRUE(near(got, want, relative)) << divergence << " " << scope << " " << fraction << " " << plan.canonical()
                                       << ": " << got << " vs " << want;
        }
      }
    }
    // The full evaluation: the task, perplexity, divergence from the original, memory, speed.
    Task full{++id, "full_eval", plan, Json::object(), 1};
    std::map<std::string, double> want = metrics_of(cpu.run(full)), got = metrics_of(lazy.run(full));
    ASSERT_TRUE(want.count("perplexity") && want.count("js_logits_model") && want.count("tokens_per_s") &&
                want.count("tiny_task_acc"));
    for (const auto& [name, value] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      if (run_dependent_metric(name)) continue;  // timings, the process
      if (dtype == "bfloat16" && name.find("_acc") != std::string::npos) {
        // An item whose choices are near-tied may be decided either way in bfloat16: the
        // accuracies may differ by one item of the task's four (and their errors with them).
        EXPECT_LE(std::abs(got[name] - value), 0.25 + 1e-12) << name << ": " << got[name] << " vs " << value;
        continue;
      }
      EXPECT_TRUE(near(got[name], value, relative)) << name << ": " << got[name] << " vs " << value;
    }
    EXPECT_EQ(got.size(), want.size());  // no CUDA peak: the lazy device is not CUDA
    // Parameter memory counts the compute dtype's bytes: 2 per parameter in bfloat16.
    EXPECT_EQ(got["param_bytes"], got["param_bytes_materialised"]);
    EXPECT_NEAR(got["param_bytes"] / got["param_ratio"], double(original_parameters * (dtype == "bfloat16" ? 2 : 4)), 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SecondDevice, ::testing::Values("float32", "bfloat16"));

// The host loops need host memory: asked for on device tensors, they refuse (a runtime error,
// exit 1) instead of reading device pointers; kAuto picks the tensor operations there.
TEST(SecondDeviceKernels, HostLoopsRefuseDeviceTensorsAndAutoAvoidsThem) {
  at::Tensor x = at::randn({3, 4}).to(testing::lazy_device()), w = at::randn({10, 4}).to(testing::lazy_device());
  try {
    eval::VocabularyReference(x, w, 4, 0, eval::VocabularyKernel::kHostLoops);
    ADD_FAILURE() << "host loops accepted lazy tensors";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("host loops need CPU tensors"), std::string::npos) << e.what();
  }
  EXPECT_EQ(eval::VocabularyReference(x, w, 4, 0).kernel(), eval::VocabularyKernel::kTensorOps);
}

}  // namespace
}  // namespace cdmoe::worker
