// Bad checkpoints: every one is refused with a one-line bad-input error naming the file and
// the tensor or key; and the same weights stored single/sharded, F32/F16/BF16 load alike.
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

namespace fs = std::filesystem;
using cdmoe::testing::read_file;
using cdmoe::testing::TempDir;
using cdmoe::testing::write_file;

const std::string kModel = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_gqa";

std::string copy_model(const TempDir& dir) {
  std::string out = dir.file("model");
  fs::copy(kModel, out, fs::copy_options::recursive);
  return out;
}

std::string load_error(const std::string& dir) {
  try {
    MoeModel::load(dir);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "loaded " << dir;
  return "";
}

// A safetensors file from a header text and a data section.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char(uint64_t(header.size()) >> (8 * i));
  return bytes + header + data;
}

std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x.safetensors");
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  ADD_FAILURE() << "parsed";
  return "";
}

TEST(Safetensors, RejectsMalformedHeaders) {
  EXPECT_NE(parse_error("abc").find("truncated"), std::string::npos);
  std::string big = raw_file("{}", "");
  big[0] = char(0xff);
  EXPECT_NE(parse_error(big).find("header size 255 is larger than the file"), std::string::npos);
  EXPECT_NE(parse_error(raw_file("{\"a\":", "")).find("header is not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(raw_file("[1]", "")).find("not a JSON object"), std::string::npos);
  std::string data(16, 'x');
  EXPECT_NE(parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", data))
                .find("tensor 'w': data_offsets [0, 32] are out of range"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data))
                .find("tensor 'w': data_offsets span 16 bytes but shape x F32 needs 12"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", data))
                .find("tensor 'w': unsupported dtype I64"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data))
                .find("overlaps"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data))
                .find("bytes 0..8 of the data section belong to no tensor"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data))
                .find("8 bytes after the last tensor"), std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data))
                .find("shape holds -2"), std::string::npos);
  // A good one, with metadata.
  std::string good = raw_file(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,16]}})", data);
  auto header = parse_safetensors(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "ok");
  EXPECT_EQ(header.metadata.at("format"), "pt");
  EXPECT_EQ(header.tensors.at("a").elements(), 8);
}

// The streamed writer lays tensors out in the order given and asks for each one's bytes only
// when it reaches it; a writer that throws midway leaves no file (nor a temporary).
TEST(Safetensors, StreamedWriterAsksInOrderAndLeavesNothingWhenItsSourceFails) {
  TempDir dir;
  const std::vector<float> a = {1, 2, 3}, b = {4, 5};
  const std::vector<TensorToWrite> layout = {{"z.first", DType::kF32, {3}, nullptr}, {"a.second", DType::kF32, {2}, nullptr}};
  std::vector<size_t> asked;
  write_safetensors_streamed(dir.file("ok.safetensors"), layout, [&](size_t i) -> const void* {
    asked.push_back(i);
    return i == 0 ? a.data() : b.data();
  });
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1}));
  SafetensorsFile file(dir.file("ok.safetensors"));
  const TensorInfo& first = file.header().tensors.at("z.first");
  const TensorInfo& second = file.header().tensors.at("a.second");
  EXPECT_EQ(first.begin, 0u) << "laid out in the order given, not by name";
  EXPECT_EQ(second.begin, first.end);
  EXPECT_EQ(reinterpret_cast<const float*>(file.tensor_data(second))[1], 5.0f);

  EXPECT_THROW(write_safetensors_streamed(dir.file("bad.safetensors"), layout, [&](size_t i) -> const void* {
                 if (i == 1) throw_bad_input("the second tensor is not finite");
                 return a.data();
               }),
               Error);
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir.path())) left.push_back(entry.path().filename().string());
  EXPECT_EQ(left, (std::vector<std::string>{"ok.safetensors"}));
}

TEST(Checkpoint, TruncatedFileNamesTheFile) {
  TempDir dir;
  std::string model = copy_model(dir);
  std::string bytes = read_file(model + "/model.safetensors");
  write_file(model + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  std::string message = load_error(model);
  EXPECT_NE(message.find(model + "/model.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("out of range"), std::string::npos) << message;
}

TEST(Checkpoint, MissingExtraAndMisshapenTensors) {
  TempDir dir;
  std::string model = copy_model(dir);
  std::string path = model + "/model.safetensors";
  std::vector<std::string> names;
  {
    SafetensorsFile original(path);
    for (const auto& [name, info] : original.header().tensors) names.push_back(name);
  }
  auto rewrite = [&](const std::string& drop, const std::string& add) {
    SafetensorsFile original(kModel + "/model.safetensors");
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, info] : original.header().tensors) {
      if (name != drop) tensors.push_back({name, info.dtype, info.shape, original.tensor_data(info)});
    }
    static const float kExtra[2] = {1, 2};
    if (!add.empty()) tensors.push_back({add, DType::kF32, {2}, kExtra});
    write_safetensors(path, tensors);
  };
  rewrite("model.layers.1.mlp.experts.3.up_proj.weight", "");
  EXPECT_NE(load_error(model).find("missing tensor 'model.layers.1.mlp.experts.3.up_proj.weight'"), std::string::npos);
  rewrite("", "model.layers.9.mlp.gate.weight");
  EXPECT_NE(load_error(model).find(path + ": unexpected tensor 'model.layers.9.mlp.gate.weight'"), std::string::npos);
  rewrite("", "");
  Json config = read_json_file(model + "/config.json");
  config["intermediate_size"] = 40;
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [48, 32], config.json implies [40, 32]"),
            std::string::npos);
  config.erase("intermediate_size");
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("config.json: missing required field 'intermediate_size'"), std::string::npos);
  config["intermediate_size"] = 48;
  config["hidden_act"] = "gelu";
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("hidden_act \"gelu\" is not supported"), std::string::npos);
  config["hidden_act"] = "silu";
  config["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}};
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("rope_scaling: type \"dynamic\" is not supported (supported: none, linear, yarn)"), std::string::npos);
  config["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 100000}};
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("rope_scaling: original_max_position_embeddings must be in [1, max_position_embeddings]"),
            std::string::npos);
  config["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"mscale", -1}, {"mscale_all_dim", 1}};
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("rope_scaling: yarn parameters must be finite, in [0, 1e6]"), std::string::npos);
  config["rope_scaling"] = {{"type", "yarn"}, {"factor", -2.0}};
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("rope_scaling: factor must be in (0, 1e6]"), std::string::npos);
  config["rope_scaling"] = nullptr;
  config["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 0}};  // transformers 5's form
  write_file(model + "/config.json", config.dump());
  EXPECT_NE(load_error(model).find("rms_norm_eps and rope_theta must be positive"), std::string::npos);
}

TEST(Checkpoint, ShardProblems) {
  TempDir dir;
  std::string model = dir.file("sharded");
  fs::copy(std::string(CDMOE_TEST_FIXTURES) + "/model/qwen_sharded", model, fs::copy_options::recursive);
  fs::remove(model + "/model-00002-of-00002.safetensors");
  EXPECT_NE(load_error(model).find("model.safetensors.index.json names shard 'model-00002-of-00002.safetensors', which does not exist"),
            std::string::npos);
  TempDir empty;
  write_file(empty.file("config.json"), "{}");
  EXPECT_NE(load_error(empty.path()).find("has neither model.safetensors nor model.safetensors.index.json"), std::string::npos);
  EXPECT_NE(load_error(empty.file("nope")).find("does not exist"), std::string::npos);
}

// The same weights as one F32 file, F32 shards, F16 and BF16 give the same logits (to the
// storage dtype's rounding).
TEST(Checkpoint, StorageFormatsAgree) {
  TempDir dir;
  SafetensorsFile original(kModel + "/model.safetensors");
  auto write_as = [&](const std::string& name, int shards, at::ScalarType type, DType dtype) {
    std::string out = dir.file(name);
    fs::create_directories(out);
    fs::copy(kModel + "/config.json", out + "/config.json");
    std::vector<at::Tensor> keep_alive;
    std::vector<std::vector<TensorToWrite>> parts(static_cast<size_t>(shards));
    Json weight_map = Json::object();
    size_t i = 0;
    for (const auto& [tensor_name, info] : original.header().tensors) {
      at::Tensor t = at::from_blob(const_cast<uint8_t*>(original.tensor_data(info)), info.shape, at::kFloat).to(type).contiguous();
      keep_alive.push_back(t);
      size_t shard = i++ % size_t(shards);
      parts[shard].push_back({tensor_name, dtype, info.shape, t.data_ptr()});
      weight_map[tensor_name] = "part-" + std::to_string(shard) + ".safetensors";
    }
    if (shards == 1) {
      write_safetensors(out + "/model.safetensors", parts[0]);
    } else {
      for (int s = 0; s < shards; ++s) write_safetensors(out + "/part-" + std::to_string(s) + ".safetensors", parts[size_t(s)]);
      write_file(out + "/model.safetensors.index.json", Json{{"weight_map", weight_map}}.dump());
    }
    return out;
  };
  at::Tensor ids = at::arange(10, at::kLong).view({2, 5}) * 7 % 96;
  Plan plan = Plan::parse(R"({"layers":{"2":{"op":"condense","experts":[1,4],"weights":[0.5,0.4]}}})", "p");
  at::Tensor reference = MoeModel::load(kModel)->logits(ids, at::Tensor(), plan);
  at::Tensor sharded = MoeModel::load(write_as("sharded", 3, at::kFloat, DType::kF32))->logits(ids, at::Tensor(), plan);
  EXPECT_TRUE(at::equal(reference, sharded));
  double scale = reference.abs().max().item<double>();
  for (auto [type, dtype, tolerance] : {std::tuple{at::kHalf, DType::kF16, 0.01}, std::tuple{at::kBFloat16, DType::kBF16, 0.05}}) {
    at::Tensor got = MoeModel::load(write_as(dtype_name(dtype), 1, type, dtype))->logits(ids, at::Tensor(), plan);
    double diff = (got - reference).abs().max().item<double>();
    EXPECT_LT(diff, tolerance * scale) << dtype_name(dtype);
    EXPECT_GT(diff, 0) << dtype_name(dtype) << " really was stored rounded";
  }
}

// The fused condensed MLP equals the sum of its parts; router statistics give the defaults.
TEST(Model, CondenseDefaultsComeFromRouterStatistics) {
  auto model = MoeModel::load(kModel);
  at::Tensor ids = at::arange(12, at::kLong).view({2, 6}) * 5 % 96;
  Plan unweighted = Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[2,6]}}})", "p");
  try {
    model->logits(ids, at::Tensor(), unweighted);
    FAIL() << "condense without weights or statistics";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs router statistics"), std::string::npos);
  }
  model->collect_router_stats(true);
  model->logits(ids, at::Tensor(), Plan());
  model->collect_router_stats(false);
  const RouterStats& stats = model->router_stats();
  ASSERT_TRUE(stats.layers.count(1));
  double routed = 0;
  for (double t : stats.layers.at(1).tokens) routed += t;
  EXPECT_EQ(routed, 12 * 2) << "12 tokens, top-2";
  double w2 = stats.average_weight(1, 2), w6 = stats.average_weight(1, 6);
  Plan explicit_weights = Plan::parse(
      "{\"layers\":{\"1\":{\"op\":\"condense\",\"experts\":[2,6],\"weights\":[" + std::to_string(w2) + "," +
      std::to_string(w6) + "]}}}", "p");
  at::Tensor a = model->logits(ids, at::Tensor(), unweighted);
  at::Tensor b = model->logits(ids, at::Tensor(), explicit_weights);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-4);
}

// Running the layers one at a time, each from the previous one's output, reproduces the whole
// forward (what the eval layer cache relies on).
TEST(Model, PartialRunsCompose) {
  auto model = MoeModel::load(kModel);
  at::Tensor ids = at::arange(12, at::kLong).view({2, 6}) * 7 % 96;
  at::Tensor mask = at::ones({2, 6}, at::kLong);
  mask[1][5] = 0;
  Plan plan = Plan::parse(R"({"layers":{"2":{"op":"prune","experts":[1,2,3]}}})", "p");
  at::Tensor logits = model->logits(ids, mask, plan);
  std::vector<at::Tensor> boundaries = {model->embed(ids)};
  for (int layer = 0; layer < 3; ++layer) {
    boundaries.push_back(model->run_layers(boundaries.back(), mask, layer, layer + 1, plan));
  }
  EXPECT_TRUE(at::allclose(model->head(boundaries[3]), logits, 0, 1e-6));
  at::Tensor from_one = model->head(model->run_layers(boundaries[1], mask, 1, 3, plan));
  EXPECT_TRUE(at::allclose(from_one, logits, 0, 1e-6));
  EXPECT_FALSE(at::allclose(model->head(boundaries[2]), logits, 0, 1e-3)) << "a layer short differs";
}

}  // namespace
}  // namespace cdmoe::model
