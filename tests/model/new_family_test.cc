// ARCHITECTURE.md §4's promise, kept by a test: a family is one definition and one registration
// line. "toy_moe" is defined here, outside model/ (OLMoE's config reader and block, its MoE block
// under "moe." with a router "router.weight" and experts' projections "wi", "wu", "wo"), and
// registered; a checkpoint in its names (the olmoe_clip fixture renamed) then loads, header check
// included, to the PyTorch reference's logits under every plan, and exports under its own names.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "model/checkpoint.h"
#include "model/families/families.h"
#include "model/family.h"
#include "model/hf_export.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/weight_names.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

namespace fs = std::filesystem;
const std::string kFixture = std::string(CDMOE_TEST_FIXTURES) + "/model/olmoe_clip";

// The whole family: everything but the names is OLMoE's.
const Family kToyFamily{"toy_moe", kOlmoeFamily.read_shape,
                        MoeWeightNames{"moe.", "router.weight", "experts.", SwigluNames{"wi", "wu", "wo"}, "", ""},
                        /*shared_expert_gate=*/false, /*topk_norm_epsilon=*/0.0, /*topk_norm_min_k=*/1,
                        /*default_rms_norm_eps=*/1e-5, /*default_rope_theta=*/10000, /*reference_experts_kept=*/kExpertsPerToken};

at::Tensor golden(const std::string& plan, const std::string& name) {
  SafetensorsFile file(kFixture + "/golden/" + plan + ".safetensors");
  const TensorInfo& info = file.header().tensors.at(name);
  return at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat).clone();
}

at::Tensor read_ids(const std::string& path) {
  Json rows = read_json_file(path);
  std::vector<int64_t> values;
  for (const Json& row : rows) for (const Json& v : row) values.push_back(v.get<int64_t>());
  return at::tensor(values, at::kLong).view({int64_t(rows.size()), -1});
}

TEST(NewFamily, OneDefinitionAndOneRegistrationLineMakeAFamily) {
  register_family(kToyFamily);
  testing::TempDir dir;
  const std::string toy = dir.file("toy");
  fs::create_directories(toy);
  // The fixture's config as a toy_moe config; its tensors under the toy family's names.
  Json config = read_json_file(kFixture + "/config.json");
  const ModelConfig olmoe = model_config_from_json(config, "olmoe config");
  config["model_type"] = "toy_moe";
  std::ofstream(toy + "/config.json") << config.dump();
  const ModelConfig toy_config = model_config_from_json(config, "toy config");
  Checkpoint source(kFixture);
  std::vector<TensorSpec> from = expected_tensors(olmoe, Plan()), to = expected_tensors(toy_config, Plan());
  ASSERT_EQ(from.size(), to.size());
  std::vector<at::Tensor> keep;
  std::vector<TensorToWrite> tensors;
  size_t renamed = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    ASSERT_EQ(from[i].shape, to[i].shape) << from[i].name;
    renamed += from[i].name != to[i].name;
    Checkpoint::Located found = source.find(from[i].name);
    keep.push_back(at::from_blob(const_cast<uint8_t*>(found.file->tensor_data(*found.info)), found.info->shape, at::kFloat).clone());
    tensors.push_back({to[i].name, DType::kF32, to[i].shape, keep.back().data_ptr()});
  }
  EXPECT_GT(renamed, 0u);
  write_safetensors(toy + "/model.safetensors", tensors);
  EXPECT_TRUE(std::any_of(to.begin(), to.end(), [](const TensorSpec& t) { return t.name == "model.layers.1.moe.router.weight"; }));

  auto model = MoeModel::load(toy);
  EXPECT_EQ(model->shape().model_type, "toy_moe");
  at::Tensor ids = read_ids(kFixture + "/ids.json");
  for (const auto& entry : fs::directory_iterator(kFixture + "/plans")) {
    const std::string plan = entry.path().stem().string();
    at::Tensor logits = model->logits(ids, at::Tensor(), Plan::read_file(entry.path().string()));
    EXPECT_LE((logits - golden(plan, "logits")).abs().max().item<double>(), 1e-4) << plan;
  }
  // Export writes the toy names, and the export loads back.
  fs::create_directories(dir.file("exported"));
  write_hf_files(*model, Plan(), toy, dir.file("exported"));
  EXPECT_TRUE(Checkpoint(dir.file("exported")).find("model.layers.0.moe.experts.3.wo.weight").info != nullptr);
  EXPECT_TRUE(at::equal(MoeModel::load(dir.file("exported"))->logits(ids, at::Tensor(), Plan()),
                        model->logits(ids, at::Tensor(), Plan())));
  EXPECT_THROW(register_family(kToyFamily), Error);  // one model_type, one family
}

}  // namespace
}  // namespace cdmoe::model
