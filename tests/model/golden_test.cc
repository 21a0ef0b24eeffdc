// Logits of tiny checkpoints of every family, under every plan op, against golden logits
// from an independent PyTorch reference (tests/fixtures/model/make_golden.py).
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "tests/test_device.h"
#include "tests/model/golden_files.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

std::vector<std::string> list(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        names.push_back(name.substr(0, name.size() - suffix.size()));
      }
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

using testing::read_golden;
using testing::read_matrix;

// (model directory, device): "test" is testing::test_device() (a GPU where there is one),
// "lazy" the lazy tensor device, where a tensor left on the CPU stops the process.
class Golden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Golden, LogitsMatchTheReferenceUnderEveryPlan) {
  auto [family, device] = GetParam();
  std::string dir = kModels + "/" + family;
  auto model = MoeModel::load(dir, device == "lazy" ? testing::lazy_device() : testing::test_device());
  at::Tensor ids = read_matrix(dir + "/ids.json");
  at::Tensor mask = read_matrix(dir + "/mask.json");
  std::vector<std::string> plans = list(dir + "/plans", ".json");
  ASSERT_GE(plans.size(), 6u);
  for (const std::string& name : plans) {
    Plan plan = Plan::read_file(dir + "/plans/" + name + ".json");
    std::string golden = dir + "/golden/" + name + ".safetensors";
    at::Tensor plain = model->logits(ids, at::Tensor(), plan).cpu();
    at::Tensor masked = model->logits(ids, mask, plan).cpu();
    at::Tensor expected = read_golden(golden, "logits"), expected_masked = read_golden(golden, "logits_masked");
    ASSERT_EQ(plain.sizes(), expected.sizes());
    double diff = (plain - expected).abs().max().item<double>();
    double diff_masked = (masked - expected_masked).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4) << family << " on " << device << " plan " << name;
    EXPECT_LE(diff_masked, 1e-4) << family << " on " << device << " plan " << name << " (padded)";
    if (name != "original") {
      at::Tensor original = read_golden(dir + "/golden/original.safetensors", "logits");
      EXPECT_GT((expected - original).abs().max().item<double>(), 1e-3) << "plan " << name << " changes nothing";
    }
  }
}

// Bfloat16 compute (the default on CUDA), on the test device and on the lazy device: every plan's
// logits stay near its float32 golden values, at most half as far as from any other plan's (so
// each op still does what it should through bfloat16 rounding), with the same next-token
// distributions to within a small Jensen-Shannon divergence. Measured here: at most 0.19 from
// its own golden logits (of magnitude up to 4.6), at least 0.41 from another plan's, JS at most
// 5.2e-4 nats.
TEST_P(Golden, Bfloat16ComputeStaysNearTheFloat32Reference) {
  auto [family, device] = GetParam();
  std::string dir = kModels + "/" + family;
  auto model = MoeModel::load(dir, device == "lazy" ? testing::lazy_device() : testing::test_device(), at::kBFloat16);
  ASSERT_EQ(model->dtype(), at::kBFloat16);
  at::Tensor ids = read_matrix(dir + "/ids.json"), mask = read_matrix(dir + "/mask.json");
  std::vector<std::string> plans = list(dir + "/plans", ".json");
  std::map<std::string, at::Tensor> golden;
  for (const std::string& name : plans) golden[name] = read_golden(dir + "/golden/" + name + ".safetensors", "logits_masked");
  for (const std::string& name : plans) {
    at::Tensor got = model->logits(ids, mask, Plan::read_file(dir + "/plans/" + name + ".json")).cpu();
    ASSERT_EQ(got.scalar_type(), at::kFloat);
    at::Tensor valid = mask.to(at::kBool).flatten();
    auto rows = [&](const at::Tensor& t) { return t.reshape({-1, t.size(-1)}).index_select(0, valid.nonzero().squeeze(1)); };
    double own = (rows(got) - rows(golden[name])).abs().max().item<double>();
    double scale = rows(golden[name]).abs().max().item<double>();
    at::Tensor p = at::log_softmax(rows(golden[name]).to(at::kDouble), -1), q = at::log_softmax(rows(got).to(at::kDouble), -1);
    at::Tensor m = at::logaddexp(p, q) - std::log(2.0);
    double js = (0.5 * (p.exp() * (p - m) + q.exp() * (q - m)).sum(-1)).max().item<double>();
    std::string where = family + " on " + device + " plan " + name;
    EXPECT_LE(own, 0.08 * scale) << where;
    EXPECT_LE(js, 2e-3) << where;
    for (const auto& [other, logits] : golden) {
      if (other == name || at::equal(logits, golden[name])) continue;  // two plans may coincide
      EXPECT_LT(2 * own, (rows(got) - rows(logits)).abs().max().item<double>()) << where << " is as near to " << other;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Golden,
                         ::testing::Combine(::testing::ValuesIn(cdmoe::testing::kGoldenModelFixtures),
                                            ::testing::Values("test", "lazy")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

}  // namespace
}  // namespace cdmoe::model
