// PairedRatio against golden values made independently (tests/fixtures/core/make_paired_ratio.py:
// t quantiles by bisection on a numerically integrated CDF).
#include "core/paired_ratio.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe {
namespace {

nlohmann::json golden() {
  std::ifstream in(std::string(CDMOE_TEST_FIXTURES) + "/core/paired_ratio.json");
  return nlohmann::json::parse(in);
}

TEST(PairedRatio, StudentQuantilesMatchTheNumericalOnes) {
  const nlohmann::json all = golden();
  for (const auto& [degrees, value] : all.at("t_975").items()) {
    EXPECT_NEAR(student_t_975(std::stoi(degrees)), value.get<double>(), 1e-4 * value.get<double>()) << degrees;
  }
  EXPECT_THROW(student_t_975(0), Error);
}

TEST(PairedRatio, IntervalsMatchTheGoldenOnes) {
  int checked = 0;
  const nlohmann::json all = golden();
  for (const auto& c : all.at("cases")) {
    PairedRatio ratio;
    for (const auto& pair : c.at("pairs")) ratio.add(pair[0].get<double>(), pair[1].get<double>());
    RatioInterval r = ratio.interval();
    EXPECT_EQ(r.pairs, int(c.at("pairs").size()));
    EXPECT_NEAR(r.ratio, c.at("ratio").get<double>(), 1e-12);
    EXPECT_NEAR(r.low, c.at("low").get<double>(), 1e-4 * r.ratio);
    EXPECT_NEAR(r.high, c.at("high").get<double>(), 1e-4 * r.ratio);
    EXPECT_LE(r.low, r.ratio);
    EXPECT_GE(r.high, r.ratio);
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(PairedRatio, TightensWithAgreeingPairsAndRejectsBadTimings) {
  PairedRatio ratio;
  EXPECT_EQ(ratio.interval().pairs, 0);
  ratio.add(2.0, 1.0);
  EXPECT_EQ(ratio.interval().relative_half_width(), INFINITY) << "one pair has no interval";
  ratio.add(2.2, 1.0);
  double wide = ratio.interval().relative_half_width();
  for (int i = 0; i < 20; ++i) ratio.add(2.1, 1.0);
  EXPECT_LT(ratio.interval().relative_half_width(), wide / 5);
  EXPECT_NEAR(ratio.interval().ratio, 2.1, 0.01);
  EXPECT_THROW(ratio.add(0.0, 1.0), Error);
  EXPECT_THROW(ratio.add(1.0, -1.0), Error);
}

}  // namespace
}  // namespace cdmoe
