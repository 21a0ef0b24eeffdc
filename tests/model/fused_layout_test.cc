// transformers 5's fused expert layout ("mlp.experts.gate_up_proj" [E, 2I, D], gate rows then up
// rows; "mlp.experts.down_proj" [E, D, I]; Mixtral's block_sparse_moe renamed mlp): a golden
// fixture rewritten in that layout by this test loads to exactly the same logits as its
// per-expert twin under every plan, and a fused tensor of the wrong shape is bad input naming it.
#include <filesystem>
#include <set>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/family.h"
#include "model/hf_export.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/weight_names.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

namespace fs = std::filesystem;
const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

at::ScalarType torch_type(DType dtype) {
  return dtype == DType::kF32 ? at::kFloat : dtype == DType::kF16 ? at::kHalf : at::kBFloat16;
}

// Writes `source` to `out` in the fused layout; `gate_up_rows` != 0 writes gate_up_proj with that
// many rows per expert instead of 2I (a damaged checkpoint).
void write_fused_twin(const std::string& source, const std::string& out, int64_t gate_up_rows = 0) {
  Checkpoint checkpoint(source);
  const ModelConfig config = read_checkpoint_config(checkpoint);
  ASSERT_EQ(config.expert_layout, ExpertLayout::kPerExpert);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  DType dtype = DType::kF32;
  auto read = [&](const std::string& name) {
    Checkpoint::Located found = checkpoint.find(name);
    dtype = found.info->dtype;
    return at::from_blob(const_cast<uint8_t*>(found.file->tensor_data(*found.info)), found.info->shape,
                         torch_type(found.info->dtype)).clone();
  };
  std::set<std::string> expert_tensors;
  for (int layer : config.shape.moe_layers()) {
    const LayerNames per_expert = layer_names(*config.family, layer), fused = layer_names(*config.family, layer, true);
    std::vector<at::Tensor> gate_up, down;
    for (int64_t e = 0; e < config.shape.num_routed_experts; ++e) {
      const MlpNames names = per_expert.expert(e);
      gate_up.push_back(at::cat({read(names.gate), read(names.up)}, 0));
      down.push_back(read(names.down));
      expert_tensors.insert({names.gate, names.up, names.down});
    }
    at::Tensor stacked = at::stack(gate_up);
    if (gate_up_rows) stacked = stacked.narrow(1, 0, gate_up_rows);
    tensors.emplace_back(fused.fused_gate_up, stacked.contiguous());
    tensors.emplace_back(fused.fused_down, at::stack(down));
    tensors.emplace_back(fused.router, read(per_expert.router));
    expert_tensors.insert(per_expert.router);
  }
  for (const std::string& name : checkpoint.tensor_names()) {
    if (!expert_tensors.count(name)) tensors.emplace_back(name, read(name));
  }
  fs::create_directories(out);
  std::vector<TensorToWrite> files;
  for (auto& [name, t] : tensors) files.push_back({name, dtype, t.sizes().vec(), t.data_ptr()});
  write_safetensors(out + "/model.safetensors", files);
  fs::copy_file(source + "/config.json", out + "/config.json");
}

class FusedLayout : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedLayout, LoadsToTheSameLogitsAsThePerExpertTwin) {
  const std::string source = kModels + "/" + GetParam();
  testing::TempDir dir;
  write_fused_twin(source, dir.file("fused"));
  ASSERT_EQ(read_checkpoint_config(Checkpoint(dir.file("fused"))).expert_layout, ExpertLayout::kFused);
  auto twin = MoeModel::load(source), fused = MoeModel::load(dir.file("fused"));
  at::Tensor ids = at::arange(12, at::kLong).view({2, 6}) * 7 % 90;
  for (const auto& entry : fs::directory_iterator(source + "/plans")) {
    Plan plan = Plan::read_file(entry.path().string());
    EXPECT_TRUE(at::equal(twin->logits(ids, at::Tensor(), plan), fused->logits(ids, at::Tensor(), plan)))
        << GetParam() << " " << entry.path().filename();
  }
  // Export writes the per-expert layout, which reloads to the same logits again.
  fs::create_directories(dir.file("exported"));
  write_hf_files(*fused, Plan(), dir.file("fused"), dir.file("exported"));
  ASSERT_EQ(read_checkpoint_config(Checkpoint(dir.file("exported"))).expert_layout, ExpertLayout::kPerExpert);
  EXPECT_TRUE(at::equal(twin->logits(ids, at::Tensor(), Plan()),
                        MoeModel::load(dir.file("exported"))->logits(ids, at::Tensor(), Plan())));
}

TEST_P(FusedLayout, AFusedTensorOfTheWrongShapeIsBadInputNamingIt) {
  const std::string source = kModels + "/" + GetParam();
  testing::TempDir dir;
  write_fused_twin(source, dir.file("bad"), /*gate_up_rows=*/3);
  try {
    MoeModel::load(dir.file("bad"));
    ADD_FAILURE() << "a damaged fused checkpoint loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    const std::string message = e.what();
    EXPECT_NE(message.find("experts.gate_up_proj' has shape ["), std::string::npos) << message;
    EXPECT_NE(message.find("config.json implies ["), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FusedLayout,
                         ::testing::Values("qwen_tied_f16", "qwen3_head_dim", "mixtral_head_dim", "olmoe_bias_bf16",
                                           "deepseek_v3_groups", "deepseek_v2_lora_bf16", "glm4_partial_rope"));

}  // namespace
}  // namespace cdmoe::model
