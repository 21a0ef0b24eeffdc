// --device: the placement rule (cuda:(local_rank % gpus), CPU otherwise) and its errors, and,
// on this machine's CPU-only libtorch, that "cuda" is refused while "auto" falls back to the CPU.
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/device.h"
#include "model/moe_model.h"

namespace cdmoe::model {
namespace {

int exit_code_of(const std::function<void()>& call, std::string* message) {
  try {
    call();
  } catch (const Error& e) {
    *message = e.what();
    return e.exit_code();
  }
  return 0;
}

TEST(DeviceTest, RanksTakeTheNodesGpusInTurn) {
  EXPECT_EQ(choose_device("auto", 0, 4), "cuda:0");
  EXPECT_EQ(choose_device("auto", 3, 4), "cuda:3");
  EXPECT_EQ(choose_device("cuda", 5, 4), "cuda:1");
  EXPECT_EQ(choose_device("cuda", 7, 1), "cuda:0");  // --gpus-per-task=1: each task sees its own GPU only
}

TEST(DeviceTest, CpuWhenAskedOrWhenNoGpuIsVisible) {
  EXPECT_EQ(choose_device("cpu", 2, 4), "cpu");
  EXPECT_EQ(choose_device("auto", 2, 0), "cpu");
}

TEST(DeviceTest, BadRequestsAreBadInput) {
  std::string message;
  EXPECT_EQ(exit_code_of([] { choose_device("cuda", 0, 0); }, &message), 2);
  EXPECT_NE(message.find("--device cuda"), std::string::npos) << message;
  EXPECT_EQ(exit_code_of([] { choose_device("gpu", 0, 1); }, &message), 2);
  EXPECT_NE(message.find("\"gpu\""), std::string::npos) << message;
}

TEST(DeviceTest, ComputeDtypeIsBfloat16OnCudaAndFloat32OnTheCpuUnlessAsked) {
  EXPECT_EQ(compute_dtype_for("auto", "cuda:1"), "bfloat16");
  EXPECT_EQ(compute_dtype_for("auto", "cpu"), "float32");
  EXPECT_EQ(compute_dtype_for("float32", "cuda:0"), "float32");
  EXPECT_EQ(compute_dtype_for("bfloat16", "cpu"), "bfloat16");
  std::string message;
  EXPECT_EQ(exit_code_of([] { compute_dtype_for("fp8", "cpu"); }, &message), 2);
  EXPECT_NE(message.find("--dtype \"fp8\""), std::string::npos) << message;
}

TEST(DeviceTest, OnlyFloat32AndBfloat16AreComputeDtypes) {
  EXPECT_EQ(compute_dtype_named("bfloat16"), at::kBFloat16);
  EXPECT_EQ(compute_dtype_name(compute_dtype_named("float32")), "float32");
  std::string message;
  EXPECT_EQ(exit_code_of([] { compute_dtype_named("half"); }, &message), 2);
  EXPECT_NE(message.find("--dtype \"half\""), std::string::npos) << message;
  const std::string model = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_gqa";
  EXPECT_EQ(exit_code_of([&] { MoeModel::load(model, at::kCPU, at::kHalf); }, &message), 1);
  EXPECT_NE(message.find("float32 or bfloat16"), std::string::npos) << message;
}

TEST(DeviceTest, ThisProcessFollowsWhatLibtorchSees) {
  int gpus = visible_cuda_devices();
  EXPECT_EQ(device_for_this_process("auto", 1), gpus > 0 ? "cuda:" + std::to_string(1 % gpus) : "cpu");
  std::string message;
  int code = exit_code_of([] { device_for_this_process("cuda", 0); }, &message);
  if (gpus == 0) {
    EXPECT_EQ(code, 2);
    EXPECT_NE(message.find("--device cuda"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  } else {
    EXPECT_EQ(code, 0) << message;
  }
}

}  // namespace
}  // namespace cdmoe::model
