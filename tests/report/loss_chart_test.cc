// The fine-tuning loss chart (report/sweep_figures.h) from a snapshot built by hand: each run's
// steps as markers, their centred moving mean as a line, and its held-out losses, one series per
// held-out text, at the number of steps done when each was measured.
#include <cmath>

#include <gtest/gtest.h>

#include "report/sweep_figures.h"

namespace cdmoe::report {
namespace {

const ChartSeries* series_named(const ChartSpec& spec, const std::string& name) {
  for (const ChartSeries& s : spec.series) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

db::SweepSnapshot one_run(std::vector<HeldOutLoss> held_out) {
  db::SweepSnapshot s;
  s.name = "s";
  db::SnapshotCandidate c;
  c.id = 5, c.stage = "train", c.method = "cdmoe_s_ft", c.budget = "k=2";
  s.candidates.push_back(c);
  for (int64_t step = 0; step < 20; ++step) s.finetune[5].push_back({step, 3.0 - 0.05 * double(step), 1e-3, 64});
  if (!held_out.empty()) s.held_out[5] = std::move(held_out);
  return s;
}

TEST(LossChart, StepsTheirMovingMeanAndTheHeldOutLossesOfEachText) {
  ChartSpec spec = finetune_chart({one_run({{10, 2.75, 300, "aaaa1111bbbb2222"}, {20, 2.5, 300, "aaaa1111bbbb2222"}})});
  const ChartSeries* steps = series_named(spec, "cdmoe_s_ft k=2 #5 (steps)");
  const ChartSeries* smooth = series_named(spec, "cdmoe_s_ft k=2 #5 (smoothed)");
  const ChartSeries* held = series_named(spec, "cdmoe_s_ft k=2 #5 (held-out)");
  ASSERT_TRUE(steps && smooth && held) << spec.series.size() << " series";
  EXPECT_FALSE(steps->joined);
  EXPECT_TRUE(smooth->joined && held->joined);
  ASSERT_EQ(steps->points.size(), 20u);
  ASSERT_EQ(smooth->points.size(), 20u);
  // The window is one step either side (20 / 20): on a straight line the mean is the line
  // itself inside it, and pulled inwards at the ends.
  EXPECT_NEAR(smooth->points[10].y, steps->points[10].y, 1e-12);
  EXPECT_NEAR(smooth->points[0].y, (3.0 + 2.95) / 2, 1e-12);
  ASSERT_EQ(held->points.size(), 2u);
  EXPECT_EQ(held->points[0].x, 10);
  EXPECT_EQ(held->points[0].y, 2.75);
  EXPECT_EQ(held->points[1].x, 20);
  EXPECT_EQ(held->points[1].candidate, 5);
  EXPECT_NE(held->style, steps->style) << "told apart from the training loss";
}

TEST(LossChart, ARunResumedWithOtherHeldOutTextKeepsOneSeriesPerText) {
  ChartSpec spec = finetune_chart({one_run({{10, 2.75, 300, "aaaa1111"}, {20, 2.5, 300, "aaaa1111"},
                                            {20, 2.9, 80, "bbbb2222"}, {15, NAN, 0, "bbbb2222"}})});
  const ChartSeries* first = series_named(spec, "cdmoe_s_ft k=2 #5 (held-out aaaa1111)");
  const ChartSeries* second = series_named(spec, "cdmoe_s_ft k=2 #5 (held-out bbbb2222)");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->points.size(), 2u);
  ASSERT_EQ(second->points.size(), 1u) << "a loss that is not a number is not drawn";
  EXPECT_EQ(second->points[0].y, 2.9);
  EXPECT_EQ(series_named(spec, "cdmoe_s_ft k=2 #5 (held-out)"), nullptr);
}

TEST(LossChart, NoHeldOutSeriesWithoutHeldOutLosses) {
  ChartSpec spec = finetune_chart({one_run({})});
  EXPECT_EQ(spec.series.size(), 2u);
}

}  // namespace
}  // namespace cdmoe::report
