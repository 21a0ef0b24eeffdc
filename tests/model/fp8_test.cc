// FP8 checkpoints (DeepSeek-V3/R1, Kimi-K2): F8_E4M3 weights with a float32 scale_inv per
// block. The golden fixture deepseek_v3_fp8 (make_golden.py quantises with its own encoder and
// computes the goldens from the dequantised weights) loads to the reference logits in
// golden_test.cc; here: the code table, that the fixture really is FP8, and every way an FP8
// checkpoint can be wrong is bad input naming the file and tensor.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/fp8.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/synthetic_checkpoint.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

namespace fs = std::filesystem;
const std::string kFp8 = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_v3_fp8";

TEST(Fp8, CodesDecodeAsTheE4m3fnFormatDefinesThem) {
  EXPECT_EQ(fp8_e4m3_value(0x00), 0.0f);
  EXPECT_EQ(fp8_e4m3_value(0x38), 1.0f);             // exponent 7 (bias 7), mantissa 0
  EXPECT_EQ(fp8_e4m3_value(0xB8), -1.0f);
  EXPECT_EQ(fp8_e4m3_value(0x3C), 1.5f);             // mantissa 4/8
  EXPECT_EQ(fp8_e4m3_value(0x7E), 448.0f);           // the largest: 2^8 × 1.75
  EXPECT_EQ(fp8_e4m3_value(0x08), std::ldexp(1.0f, -6));  // the smallest normal
  EXPECT_EQ(fp8_e4m3_value(0x01), std::ldexp(1.0f, -9));  // the smallest subnormal
  EXPECT_TRUE(std::isnan(fp8_e4m3_value(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_value(0xFF)));
  EXPECT_EQ(fp8_e4m3_value(0x78), 256.0f);           // exponent 15 is a number in the fn variant
  for (int code = 1; code < 0x7E; ++code) {          // monotone over the positive codes
    EXPECT_LT(fp8_e4m3_value(uint8_t(code)), fp8_e4m3_value(uint8_t(code + 1))) << code;
  }
  // Blocks: a 3 × 5 weight in 2 × 2 blocks (partial at both edges) takes its block's scale.
  const uint8_t codes[15] = {0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0xB8};
  const float scales[6] = {1, 2, 3, 4, 5, 6};
  float out[15];
  ASSERT_TRUE(dequantize_fp8_blocks(codes, 0, 3, 5, scales, 2, 2, out));
  const float expected[15] = {1, 1, 2, 2, 3, 1, 1, 2, 2, 3, 4, 4, 5, 5, -6};
  for (int i = 0; i < 15; ++i) EXPECT_EQ(out[i], expected[i]) << i;
  uint8_t with_nan[15];
  std::memcpy(with_nan, codes, sizeof codes);
  with_nan[7] = 0xFF;
  EXPECT_FALSE(dequantize_fp8_blocks(with_nan, 0, 3, 5, scales, 2, 2, out));
  float rows_1_2[15];
  ASSERT_TRUE(dequantize_fp8_blocks(codes, 1, 3, 5, scales, 2, 2, rows_1_2));  // a thread's share
  for (int i = 5; i < 15; ++i) EXPECT_EQ(rows_1_2[i], expected[i]) << i;
}

TEST(Fp8, TheEncoderPicksTheNearestCode) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F || code == 0x80) continue;  // NaN; -0 encodes as +0
    EXPECT_EQ(fp8_e4m3_code(fp8_e4m3_value(uint8_t(code))), code) << code;
  }
  EXPECT_EQ(fp8_e4m3_code(1000.0f), 0x7E);  // clamped to ±448
  EXPECT_EQ(fp8_e4m3_code(-1000.0f), 0xFE);
  EXPECT_EQ(fp8_e4m3_code(1.06f), 0x38);    // 1.0 and 1.125 are neighbours
  EXPECT_EQ(fp8_e4m3_code(1.07f), 0x39);
  EXPECT_EQ(fp8_e4m3_code(-1.07f), 0xB9);
}

// cdmoe-synth --fp8 (the benchmark's FP8 checkpoints) quantises every layer projection but the
// router, and each loaded weight is its float twin's within E4M3's rounding: half a step, at most
// |w| / 16 in the normal range, plus the subnormal step of its block (scale_inv ≤ max|w| / 448).
TEST(Fp8, SyntheticFp8CheckpointsLoadWithinE4m3RoundingOfTheirFloatTwin) {
  testing::TempDir dir;
  SyntheticShape shape;
  shape.family = "deepseek_v3";
  shape.hidden = 256, shape.heads = 4, shape.layers = 2, shape.experts = 4, shape.expert_inner = 160, shape.top_k = 2;
  shape.vocab = 64, shape.dense_inner = 320, shape.bf16 = false, shape.kv_lora_rank = 144;
  write_synthetic_checkpoint(dir.file("f32"), shape);
  shape.fp8 = true;
  write_synthetic_checkpoint(dir.file("fp8"), shape);
  Checkpoint checkpoint(dir.file("fp8"));
  int f8 = 0;
  for (const std::string& name : checkpoint.tensor_names()) f8 += checkpoint.find(name).info->dtype == DType::kF8E4M3;
  EXPECT_EQ(f8, 5 + 3 + 5 + 3 * 4 + 3);  // attention q_a, q_b, kv_a, kv_b, o; dense MLP; experts; shared
  EXPECT_EQ(checkpoint.find("model.layers.1.mlp.gate.weight").info->dtype, DType::kF32);
  auto exact = MoeModel::load(dir.file("f32"))->materialise(Plan());
  auto rounded = MoeModel::load(dir.file("fp8"))->materialise(Plan());
  ASSERT_EQ(exact.size(), rounded.size());
  int differ = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    const at::Tensor& w = exact[i].second;
    at::Tensor error = (rounded[i].second - w).abs();
    const double bound_slack = w.abs().max().item<double>() / 448 * std::ldexp(1.0, -10);
    EXPECT_TRUE((error <= w.abs() / 16 + bound_slack * 1.0001).all().item<bool>()) << exact[i].first;
    differ += !at::equal(rounded[i].second, w);
  }
  EXPECT_EQ(differ, f8);  // exactly the quantised tensors moved
}

TEST(Fp8, TheFixtureStoresItsProjectionsAsF8WithScales) {
  Checkpoint checkpoint(kFp8);
  int f8 = 0;
  for (const std::string& name : checkpoint.tensor_names()) {
    if (checkpoint.find(name).info->dtype != DType::kF8E4M3) continue;
    ++f8;
    ASSERT_NE(checkpoint.find(name + "_scale_inv").info, nullptr) << name;
  }
  EXPECT_GE(f8, 20);  // q_a, q_b, kv_a, kv_b, o and every expert's projections
  EXPECT_EQ(checkpoint.find("model.layers.1.mlp.gate.weight").info->dtype, DType::kBF16);
}

// A copy of the fixture with its tensors edited by `edit` (name -> dtype, shape, bytes) and its
// config.json's text by `edit_config` (a key renamed is a key removed: the reader ignores unknown ones).
struct RawTensor {
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
std::string edited_copy(const testing::TempDir& dir, const std::string& name,
                        const std::function<void(std::map<std::string, RawTensor>&)>& edit,
                        const std::function<void(std::string&)>& edit_config = nullptr) {
  const std::string out = dir.file(name);
  fs::create_directories(out);
  Checkpoint checkpoint(kFp8);
  std::map<std::string, RawTensor> tensors;
  for (const std::string& tensor : checkpoint.tensor_names()) {
    Checkpoint::Located found = checkpoint.find(tensor);
    const uint8_t* data = found.file->tensor_data(*found.info);
    tensors[tensor] = {found.info->dtype, found.info->shape, std::vector<uint8_t>(data, data + (found.info->end - found.info->begin))};
  }
  edit(tensors);
  std::vector<TensorToWrite> files;
  for (auto& [tensor, raw] : tensors) files.push_back({tensor, raw.dtype, raw.shape, raw.bytes.data()});
  write_safetensors(out + "/model.safetensors", files);
  std::string config = testing::read_file(kFp8 + "/config.json");
  if (edit_config) edit_config(config);
  std::ofstream(out + "/config.json") << config;
  return out;
}

void replace(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

void expect_refused(const std::string& dir, const std::string& message) {
  try {
    MoeModel::load(dir);
    ADD_FAILURE() << "loaded; expected: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(Fp8, EveryWayAnFp8CheckpointCanBeWrongIsBadInputNamingIt) {
  testing::TempDir dir;
  const std::string kv_b = "model.layers.0.self_attn.kv_b_proj.weight";
  expect_refused(edited_copy(dir, "no_scale", [&](auto& t) { t.erase(kv_b + "_scale_inv"); }),
                 "model.safetensors: tensor '" + kv_b + "' is F8_E4M3 without its scale '" + kv_b + "_scale_inv'");
  expect_refused(edited_copy(dir, "scale_shape",
                             [&](auto& t) {
                               RawTensor& scale = t[kv_b + "_scale_inv"];  // [7, 2] for 56 x 12 in 8 x 8 blocks
                               scale.shape = {14};
                             }),
                 "scale '" + kv_b + "_scale_inv' is F32 [14], weight_block_size implies a float [7, 2]");
  expect_refused(edited_copy(dir, "no_quantization_config", [](auto&) {}, [](auto& c) { replace(c, "\"quantization_config\"", "\"unused\""); }),
                 "tensor '" + std::string("model.layers.0.self_attn.q_a_proj.weight") +
                     "' is F8_E4M3, and config.json has no quantization_config");
  expect_refused(edited_copy(dir, "gptq", [](auto&) {}, [](auto& c) { replace(c, "\"fp8\"", "\"gptq\""); }),
                 "config.json: quantization_config: quant_method \"gptq\" is not supported (supported: fp8 with block scales)");
  expect_refused(edited_copy(dir, "per_tensor", [](auto&) {},
                             [](auto& c) { replace(c, "\"weight_block_size\"", "\"unused\""); }),
                 "quantization_config: missing required field 'weight_block_size'");
  expect_refused(edited_copy(dir, "nan", [&](auto& t) { t[kv_b].bytes[5] = 0x7F; }),
                 "tensor '" + kv_b + "' holds an F8_E4M3 NaN code");
  expect_refused(edited_copy(dir, "nan_scale",
                             [&](auto& t) {
                               const float nan = std::nanf("");
                               std::memcpy(t[kv_b + "_scale_inv"].bytes.data() + 4, &nan, sizeof nan);
                             }),
                 "model.safetensors: scale '" + kv_b + "_scale_inv' holds a value that is not finite");
  expect_refused(edited_copy(dir, "fmt", [](auto&) {}, [](auto& c) { replace(c, "\"e4m3\"", "\"e5m2\""); }),
                 "config.json: quantization_config: fmt \"e5m2\" is not supported (supported: e4m3)");
  expect_refused(edited_copy(dir, "block_zero", [](auto&) {}, [](auto& c) { replace(c, "\"weight_block_size\": [\n      8,", "\"weight_block_size\": [\n      0,"); }),
                 "config.json: quantization_config: field 'weight_block_size' must be two integers in [1, 65536]");
  expect_refused(edited_copy(dir, "norm_f8",
                             [&](auto& t) {
                               RawTensor& norm = t["model.layers.0.input_layernorm.weight"];
                               norm = {DType::kF8E4M3, norm.shape, std::vector<uint8_t>(size_t(norm.shape[0]), 0x38)};
                             }),
                 "tensor 'model.layers.0.input_layernorm.weight' is F8_E4M3 with 1 dimensions");
  // Nothing of the refused loads is left behind: the fixture itself still loads.
  EXPECT_NO_THROW(MoeModel::load(kFp8));
}

}  // namespace
}  // namespace cdmoe::model
