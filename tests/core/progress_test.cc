// RecentRate: the ETA's pace follows the last minute, not the whole run.
#include "core/progress.h"

#include <gtest/gtest.h>

namespace cdmoe {
namespace {

using std::chrono::seconds;

TEST(RecentRate, FollowsTheLastWindowNotTheWholeRun) {
  RecentRate::Clock::time_point t0{};
  RecentRate rate(t0, seconds(60));
  EXPECT_EQ(rate.per_second(t0, 0), 0);
  // Within the first minute: everything since the start.
  for (int i = 1; i <= 100; ++i) rate.add(t0 + seconds(i / 10), 10 * i);  // 100/s for 10 s
  EXPECT_DOUBLE_EQ(rate.per_second(t0 + seconds(10), 1000), 100.0);
  // Then slow units: one every 30 s. After two minutes of them, the pace is theirs.
  for (int i = 1; i <= 4; ++i) rate.add(t0 + seconds(10 + 30 * i), 1000 + i);
  double late = rate.per_second(t0 + seconds(130), 1004);
  EXPECT_GE(late, 1.0 / 30 - 1e-9);
  EXPECT_LE(late, 1.0 / 15);  // the whole run's average would be 1004/130 = 7.7/s
  // Nothing done for a long while: the rate keeps falling.
  EXPECT_LT(rate.per_second(t0 + seconds(400), 1004), late / 4);
}

}  // namespace
}  // namespace cdmoe
