// End-to-end: the real cdmoe-eval binary's --ids/--dump-logits mode.
#include <unistd.h>

#include <gtest/gtest.h>

#include "model/safetensors.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

using testing::CommandResult;
using testing::run_command;
using testing::TempDir;
using testing::write_file;

const std::string kEval = std::string(CDMOE_BIN_DIR) + "/cdmoe-eval";
const std::string kModel = std::string(CDMOE_TEST_FIXTURES) + "/model/qwen_sharded";

TEST(EvalCli, DumpsTheGoldenLogits) {
  TempDir dir;
  std::string out = dir.file("logits.safetensors");
  CommandResult r = run_command({kEval, "--model", kModel, "--plan", kModel + "/plans/mixed.json", "--ids",
                                 kModel + "/ids.json", "--mask", kModel + "/mask.json", "--dump-logits", out, "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  model::SafetensorsFile got(out), golden(kModel + "/golden/mixed.safetensors");
  const auto& info = got.header().tensors.at("logits");
  const auto& expected = golden.header().tensors.at("logits_masked");
  ASSERT_EQ(info.shape, expected.shape);
  ASSERT_EQ(info.dtype, model::DType::kF32);
  const float* a = reinterpret_cast<const float*>(got.tensor_data(info));
  const float* b = reinterpret_cast<const float*>(golden.tensor_data(expected));
  float worst = 0;
  for (int64_t i = 0; i < info.elements(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LE(worst, 1e-4f);
}

TEST(EvalCli, BadInputIsOneLineExitTwoAndWritesNothing) {
  TempDir dir;
  std::string out = dir.file("logits.safetensors");
  auto expect_refused = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), kEval);
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("cdmoe-eval: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_NE(access(out.c_str(), F_OK), 0) << "an output was written";
  };
  std::string ids = dir.file("ids.json");
  write_file(ids, "[[1, 2, 3], [4, 5, 6]]");
  write_file(dir.file("ragged.json"), "[[1, 2, 3], [4, 5]]");
  write_file(dir.file("text.json"), "[[1, \"two\"]]");
  write_file(dir.file("big.json"), "[[1, 2, 96]]");
  std::string long_row = "[[";
  for (int i = 0; i < 65; ++i) long_row += (i ? "," : "") + std::to_string(i % 90);
  write_file(dir.file("long.json"), long_row + "]]");
  write_file(dir.file("plan.json"), R"({"layers": {"1": {"op": "condense", "experts": [2]}}})");
  write_file(dir.file("badplan.json"), R"({"layers": {"0": {"op": "condense", "experts": [99]}}})");

  expect_refused({"--model", kModel, "--ids", ids}, "--dump-logits is required");
  expect_refused({"--model", dir.file("none"), "--ids", ids, "--dump-logits", out}, "does not exist");
  expect_refused({"--model", kModel, "--ids", dir.file("ragged.json"), "--dump-logits", out}, "row 1 has 2 entries, row 0 has 3");
  expect_refused({"--model", kModel, "--ids", dir.file("text.json"), "--dump-logits", out}, "holds \"two\", not an integer");
  expect_refused({"--model", kModel, "--ids", dir.file("big.json"), "--dump-logits", out}, "token ids must be in 0..95");
  expect_refused({"--model", kModel, "--ids", dir.file("long.json"), "--dump-logits", out},
                 "sequence of 65 tokens exceeds max_position_embeddings 64");
  expect_refused({"--model", kModel, "--ids", ids, "--plan", dir.file("plan.json"), "--dump-logits", out},
                 "layer \"1\" is a dense layer");
  expect_refused({"--model", kModel, "--ids", ids, "--plan", dir.file("badplan.json"), "--dump-logits", out},
                 "badplan.json: layer \"0\": expert 99 is out of range");
  expect_refused({"--model", kModel, "--ids", ids, "--dump-logits", out, "--threads", "-1"}, "--threads");
}

}  // namespace
}  // namespace cdmoe
