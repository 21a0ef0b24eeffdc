// Exports as stock transformers checkpoints (model/stock_export.h) against what an independent
// reader checked: tests/fixtures/stock_export/make_golden.py exported each case, read it as
// transformers' stock qwen2_moe / qwen3_moe classes do (tests/fixtures/model/make_golden.py's
// reference) to the source's golden logits under the plan (within 1e-5), checked its tensors are
// the ones the stock class creates, and recorded the config, the tensor list and the bytes'
// sha256. Here every export must be those same bytes, and cdmoe must read them back as the
// stock family (the plan lives in cdmoe.json, which it ignores) to the source's logits.
#include <dirent.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/sha256.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/stock_export.h"
#include "tests/model/golden_files.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = std::string(CDMOE_TEST_FIXTURES);
const std::string kModels = kFixtures + "/model";

using testing::read_golden;
using testing::read_matrix;

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(kFixtures + "/stock_export")) {
    if (entry.path().extension() == ".json") out.push_back(entry.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string export_of(const std::string& source, const Plan& plan, const std::string& dir, ExportOptions options) {
  auto model = MoeModel::load(source);
  fs::create_directories(dir);
  write_hf_files(*model, plan, source, dir, options);
  return dir;
}

class StockExport : public ::testing::TestWithParam<std::string> {};

TEST_P(StockExport, TheCheckedBytesAndTheSourcesLogitsWhenReadBack) {
  const Json golden = read_json_file(kFixtures + "/stock_export/" + GetParam() + ".json");
  const std::string source = kModels + "/" + golden["fixture"].get<std::string>();
  const std::string plan_name = golden["plan"].get<std::string>();
  const Plan plan = Plan::read_file(source + "/plans/" + plan_name + ".json");
  testing::TempDir dir;
  ExportOptions options;
  options.format = ExportFormat::kTransformers;
  options.dtype = "float32";
  const std::string out = export_of(source, plan, dir.file("export"), options);

  EXPECT_EQ(read_json_file(out + "/config.json"), golden["config"]);
  std::map<std::string, std::vector<int64_t>> tensors;
  for (auto it = golden["sha256"].begin(); it != golden["sha256"].end(); ++it) {
    const std::string file = out + "/" + it.key();
    EXPECT_EQ(sha256_file(file), it.value().get<std::string>()) << it.key() << ": not the bytes the reader checked";
    const SafetensorsFile weights(file);
    for (const auto& [name, info] : weights.header().tensors) tensors[name] = info.shape;
  }
  EXPECT_EQ(tensors, (golden["tensors"].get<std::map<std::string, std::vector<int64_t>>>()))
      << "names and shapes the stock class creates";
  const Json provenance = read_json_file(out + "/cdmoe.json");
  EXPECT_EQ(provenance["plan_hash"], plan.hash());
  EXPECT_EQ(provenance["source_model_type"], read_json_file(source + "/config.json")["model_type"]);

  // Read back by cdmoe as the stock family: no plan of its own, the source's logits.
  auto reread = MoeModel::load(out);
  EXPECT_TRUE(reread->fixed_plan().is_original());
  EXPECT_EQ(reread->shape().model_type, golden["config"]["model_type"].get<std::string>());
  auto original = MoeModel::load(source);
  const at::Tensor ids = read_matrix(source + "/ids.json"), mask = read_matrix(source + "/mask.json");
  const at::Tensor got = reread->logits(ids, mask, Plan());
  EXPECT_LE((got - original->logits(ids, mask, plan)).abs().max().item<double>(), 1e-5) << GetParam();
  EXPECT_LE((got - read_golden(source + "/golden/" + plan_name + ".safetensors", "logits_masked")).abs().max().item<double>(), 1e-4)
      << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StockExport, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
});

// The source's dtype unless told otherwise, and save_pretrained's shards past the size limit:
// the same model either way.
TEST(StockExportFiles, SourceDtypeByDefaultAndShardsWithAnIndex) {
  const std::string source = kModels + "/deepseek_tied_bf16";
  const Plan plan = Plan::read_file(source + "/plans/condense.json");
  testing::TempDir dir;
  ExportOptions options;
  options.format = ExportFormat::kTransformers;
  options.max_shard_bytes = 20'000;
  const std::string out = export_of(source, plan, dir.file("bf16"), options);
  EXPECT_EQ(read_json_file(out + "/config.json")["torch_dtype"], "bfloat16");
  const Json index = read_json_file(out + "/model.safetensors.index.json");
  std::set<std::string> files;
  int64_t total = 0;
  const Json& weight_map = index["weight_map"];
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    files.insert(it.value().get<std::string>());
    const SafetensorsFile weights(out + "/" + it.value().get<std::string>());
    const TensorInfo& info = weights.header().tensors.at(it.key());
    EXPECT_EQ(info.dtype, DType::kBF16) << it.key();
    total += int64_t(info.end - info.begin);
  }
  EXPECT_GT(files.size(), 2u);
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  for (const std::string& file : files) {
    EXPECT_LE(int64_t(fs::file_size(out + "/" + file)), 20'000 + 4096) << file << " (the limit, plus its header)";
  }
  // bf16 weights, computed in float32: the source's logits to bf16's resolution.
  auto original = MoeModel::load(source);
  const at::Tensor ids = read_matrix(source + "/ids.json");
  const at::Tensor expected = original->logits(ids, at::Tensor(), plan);
  const double scale = expected.abs().max().item<double>();
  EXPECT_LE((MoeModel::load(out)->logits(ids, at::Tensor(), Plan()) - expected).abs().max().item<double>(), 0.05 * scale);
}

// A weight beyond float16's range would be written as inf: refused naming it; float32 holds it.
TEST(StockExportFiles, AWeightTheDtypeCannotHoldIsRefused) {
  const std::string source = kModels + "/deepseek_gqa";
  auto model = MoeModel::load(source);
  at::Tensor embedding = model->parameters().front().second;
  { at::NoGradGuard no_grad; embedding[0][0].fill_(1e6); }
  testing::TempDir dir;
  ExportOptions options;
  options.dtype = "float16";
  fs::create_directories(dir.file("f16"));
  try {
    write_hf_files(*model, Plan(), source, dir.file("f16"), options);
    ADD_FAILURE() << "an inf weight was written";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("--dtype float16: tensor '" + model->parameters().front().first + "' is not finite in float16"),
              std::string::npos) << e.what();
  }
  options.dtype = "float32";
  fs::create_directories(dir.file("f32"));
  EXPECT_GT(write_hf_files(*model, Plan(), source, dir.file("f32"), options), 0);
}

TEST(StockExportFiles, TheSourceDtypeIsOneOfThree) {
  EXPECT_EQ(source_dtype(Json::object()), "float32");
  EXPECT_EQ(source_dtype(Json{{"dtype", "bfloat16"}}), "bfloat16");  // transformers 5's key
  try {
    source_dtype(Json{{"torch_dtype", "int8"}});
    ADD_FAILURE() << "int8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json torch_dtype: \"int8\" is not one of float32, bfloat16, float16"),
              std::string::npos) << e.what();
  }
}

TEST(StockExportFiles, WhatNoStockConfigExpressesIsRefusedNamingTheLayer) {
  auto refusal = [](const std::string& fixture, const std::string& plan_json) {
    const std::string source = kModels + "/" + fixture;
    try {
      stock_config(read_json_file(source + "/config.json"), Plan::parse(plan_json, "plan"));
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      return std::string(e.what());
    }
    return std::string("not refused");
  };
  std::string drop = refusal("qwen_sharded", R"({"layers":{"2":{"op":"drop"}}})");
  EXPECT_NE(drop.find("plan layer \"2\" drops its feed-forward block and keeps its attention"), std::string::npos) << drop;
  EXPECT_NE(drop.find("--format cdmoe"), std::string::npos) << drop;
  std::string prune = refusal("deepseek_gqa", R"({"layers":{"1":{"op":"prune","experts":[0,1,2]}}})");
  EXPECT_NE(prune.find("keeps 8 routed experts and layer 1 keeps 3"), std::string::npos) << prune;
  std::string family = refusal("mixtral_head_dim", R"({"layers":{}})");
  EXPECT_NE(family.find("a mixtral config has no per-layer dense MLP"), std::string::npos) << family;
  // DeepSeekMoE fields qwen2_moe has no way to say.
  auto deepseek_refusal = [](const char* key, const Json& value) {
    Json config = read_json_file(kModels + "/deepseek_gqa/config.json");
    config[key] = value;
    try {
      stock_config(config, Plan());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("not refused");
  };
  EXPECT_NE(deepseek_refusal("attention_bias", true).find("has attention biases (attention_bias)"), std::string::npos);
  EXPECT_NE(deepseek_refusal("n_shared_experts", 0).find("has no shared experts"), std::string::npos);
  EXPECT_NE(deepseek_refusal("rope_scaling", Json{{"type", "yarn"}, {"factor", 2.0}, {"original_max_position_embeddings", 32}})
                .find("uses yarn rope scaling"), std::string::npos);
  for (const char* fixture : {"deepseek_v3_groups", "olmoe_clip", "deepseek_v2_lite_groups", "glm4_partial_rope"}) {
    EXPECT_NE(refusal(fixture, R"({"layers":{}})").find("has no per-layer dense MLP"), std::string::npos) << fixture;
  }
}

}  // namespace
}  // namespace cdmoe::model
