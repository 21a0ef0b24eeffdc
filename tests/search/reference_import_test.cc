// cdmoe-import-reference's conversion: the reference's artifacts (small hand-written files of
// its formats in tests/fixtures/reference/) as plans for DeepSeekMoE-16B's config.
#include "search/reference_import.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/family.h"
#include "tests/search/search_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::search {
namespace {

const std::string kDir = std::string(CDMOE_TEST_FIXTURES) + "/reference";

ReferenceArtifacts artifacts(const std::string& order) {
  ReferenceArtifacts a;
  a.layer_order = read_reference_layer_order(kDir + "/" + order);
  a.expert_order = read_reference_experts(kDir + "/layer_idx_to_expert_idx.greedy_jl.json");
  a.mean_weights = read_reference_weights(kDir + "/dynamic_weight.json");
  return a;
}

TEST(ReferenceImport, TheReferencesChoicesAsPlans) {
  ModelShape shape = model::read_model_shape(std::string(CDMOE_TEST_FIXTURES) + "/configs/deepseek-moe-16b");
  ReferenceArtifacts a = artifacts("layer_idx_order.e6.json");
  EXPECT_EQ(a.layer_order, (std::vector<int>{19, 15, 22, 0, 26}));
  EXPECT_DOUBLE_EQ(a.mean_weights.at({19, 33}), 0.1285);  // "19-33": [..., 1223, 0.1285]
  std::vector<ReferencePlan> plans = reference_plans(shape, a, 6, {1, 2, 5}, "reference_sr_k6");
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_EQ(plans[0].budget, "layers:1");
  EXPECT_EQ(plans[0].method, "reference_sr_k6");
  // MoE layer 19 is decoder layer 20 (layer 0 is dense); its first six greedy experts, sorted
  // with their mean weights.
  ASSERT_EQ(plans[0].plan.layers().size(), 1u);
  const LayerPlan& lp = plans[0].plan.layers().at(20);
  EXPECT_EQ(lp.op, LayerOp::kCondense);
  EXPECT_EQ(lp.experts, (std::vector<int>{1, 4, 19, 33, 50, 60}));
  EXPECT_DOUBLE_EQ(lp.weights[0], a.mean_weights.at({19, 1}));
  EXPECT_DOUBLE_EQ(lp.weights[3], a.mean_weights.at({19, 33}));
  EXPECT_FALSE(lp.shared_weight.has_value()) << "DeepSeek's shared experts at 1, as the reference";
  std::vector<int> layers;
  for (const auto& [layer, plan] : plans[2].plan.layers()) layers.push_back(layer);
  EXPECT_EQ(layers, (std::vector<int>{1, 16, 20, 23, 27}));
  EXPECT_EQ(plans[2].plan.layers().at(1).experts, (std::vector<int>{2, 5, 8, 17, 40, 63}));

  // k = 0 (CD-MoE-S): shared-only, no expert file needed.
  ReferenceArtifacts s;
  s.layer_order = read_reference_layer_order(kDir + "/layer_idx_order.e0.json");
  std::vector<ReferencePlan> shared = reference_plans(shape, s, 0, {2}, "reference_s");
  EXPECT_EQ(shared[0].plan.canonical(), R"({"layers":{"27":{"experts":[],"op":"condense"},"4":{"experts":[],"op":"condense"}}})");
}

using search::testing::bad_input_message;

TEST(ReferenceImport, BadArtifactsNameTheFileAndEntry) {
  ModelShape shape = model::read_model_shape(std::string(CDMOE_TEST_FIXTURES) + "/configs/deepseek-moe-16b");
  ReferenceArtifacts a = artifacts("layer_idx_order.e6.json");
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 7, {1}, "r"); }).find("dynamic weights: no entry \"19-6\""), std::string::npos)
      << "the seventh expert has no weight in the file";
  a.mean_weights.erase({19, 4});
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 6, {1}, "r"); }).find("dynamic weights: no entry \"19-4\""), std::string::npos);
  a = artifacts("layer_idx_order.e6.json");
  a.layer_order.push_back(27);
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 6, {1}, "r"); }).find("MoE layer 27 is out of range: the model has 27 MoE layers"),
            std::string::npos);
  a.layer_order.pop_back();
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 6, {6}, "r"); }).find("budget layers:6 is beyond the 5 layers"), std::string::npos);
  a.expert_order.erase(22);
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 2, {3}, "r"); }).find("no experts for MoE layer 22"), std::string::npos);
  a = artifacts("layer_idx_order.e6.json");
  a.expert_order[19].resize(3);
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 6, {1}, "r"); }).find("expert file: MoE layer 19 lists 3 experts, --k is 6"),
            std::string::npos);
  a.expert_order[19][0] = 64;
  EXPECT_NE(bad_input_message([&] { reference_plans(shape, a, 2, {1}, "r"); }).find("MoE layer 19: expert 64 is out of range"), std::string::npos);

  cdmoe::testing::TempDir dir;
  cdmoe::testing::write_file(dir.file("w.json"), R"({"3_4": [1, 2, 0.5]})");
  EXPECT_NE(bad_input_message([&] { read_reference_weights(dir.file("w.json")); }).find("w.json: \"3_4\": key is not \"layer-expert\""), std::string::npos);
  // "0-1" and "00-1" name the same entry: which one wins would be arbitrary.
  cdmoe::testing::write_file(dir.file("w.json"), R"({"0-1": [1, 2, 0.5], "00-1": [1, 2, 0.25]})");
  EXPECT_NE(bad_input_message([&] { read_reference_weights(dir.file("w.json")); }).find("names layer 0, expert 1 again"), std::string::npos);
  cdmoe::testing::write_file(dir.file("e.json"), R"({"3": [1, 2], "03": [4]})");
  EXPECT_NE(bad_input_message([&] { read_reference_experts(dir.file("e.json")); }).find("names layer 3 again"), std::string::npos);
  cdmoe::testing::write_file(dir.file("w.json"), R"({"3-4": [1, 2, "x"]})");
  EXPECT_NE(bad_input_message([&] { read_reference_weights(dir.file("w.json")); }).find("expected [sum, count, mean]"), std::string::npos);
  cdmoe::testing::write_file(dir.file("o.json"), "[3, 4, 3]");
  EXPECT_NE(bad_input_message([&] { read_reference_layer_order(dir.file("o.json")); }).find("o.json: index 3 is listed twice"), std::string::npos);
  cdmoe::testing::write_file(dir.file("o.json"), "[3, -1]");
  EXPECT_NE(bad_input_message([&] { read_reference_layer_order(dir.file("o.json")); }).find("-1 is not a layer or expert index"), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::search
