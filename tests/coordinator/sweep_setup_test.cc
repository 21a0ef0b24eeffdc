// Starting and resuming sweeps by name: the same config resumes; another is refused naming the
// keys that differ; a sweep stored before a config key existed resumes under the value earlier
// binaries used (dtype: float32) and no other.
#include "coordinator/sweep_setup.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/db/db_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::coordinator {
namespace {

using cdmoe::testing::TempDir;
using cdmoe::testing::test_sweep;

std::string refusal(db::Store& store, const db::SweepSpec& spec) {
  try {
    start_or_resume_sweep(store, spec);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  return "";
}

TEST(SweepSetup, TheSameConfigResumesAnotherIsRefusedNamingTheDifference) {
  TempDir dir;
  db::Store store(dir.file("r.db"));
  db::SweepSpec spec = test_sweep("s");
  spec.config["dtype"] = "float32";
  SweepStart first = start_or_resume_sweep(store, spec);
  EXPECT_FALSE(first.resumed);
  SweepStart again = start_or_resume_sweep(store, spec);
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.sweep_id, first.sweep_id);
  db::SweepSpec other = spec;
  other.config["seed"] = 8;
  EXPECT_NE(refusal(store, other).find("seed: stored 7, now 8"), std::string::npos) << refusal(store, other);
}

TEST(SweepSetup, ASweepStoredBeforeTheDtypeKeyResumesAsFloat32Only) {
  TempDir dir;
  db::Store store(dir.file("r.db"));
  db::SweepSpec old = test_sweep("old");  // no "dtype": what binaries before --dtype stored
  ASSERT_FALSE(old.config.contains("dtype"));
  SweepStart stored = start_or_resume_sweep(store, old);
  db::SweepSpec now = old;
  now.config["dtype"] = "float32";
  SweepStart resumed = start_or_resume_sweep(store, now);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.sweep_id, stored.sweep_id);
  now.config["dtype"] = "bfloat16";
  EXPECT_NE(refusal(store, now).find("dtype: stored \"float32\", now \"bfloat16\""), std::string::npos)
      << refusal(store, now);
  // The same for the keys added with the paper's evaluation: their defaults resume, others not.
  now.config["dtype"] = "float32";
  now.config["task_average"] = "acc";
  now.config["routing_tokens"] = "calibration";
  now.config["divergence_mean"] = "token";
  EXPECT_TRUE(start_or_resume_sweep(store, now).resumed);
  now.config["divergence_mean"] = "sequence";
  EXPECT_NE(refusal(store, now).find("divergence_mean: stored \"token\", now \"sequence\""), std::string::npos)
      << refusal(store, now);
}

}  // namespace
}  // namespace cdmoe::coordinator
