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

// A changed data file is named by its key (data_hashes.finetune), not shown as two long and
// identical-looking excerpts of the whole data_hashes object.
TEST(SweepSetup, ANestedDifferenceIsNamedByItsKey) {
  TempDir dir;
  db::Store store(dir.file("r.db"));
  db::SweepSpec spec = test_sweep("s");
  spec.config["data_hashes"] = {{"calib", std::string(64, 'c')}, {"finetune", std::string(64, 'f')}, {"task:piqa", std::string(64, 'p')}};
  start_or_resume_sweep(store, spec);
  db::SweepSpec changed = spec;
  changed.config["data_hashes"]["finetune"] = std::string(64, 'e');
  const std::string message = refusal(store, changed);
  EXPECT_NE(message.find("data_hashes.finetune: stored \"ffff"), std::string::npos) << message;
  EXPECT_EQ(message.find("data_hashes.calib"), std::string::npos) << message;
  EXPECT_EQ(message.find("task:piqa"), std::string::npos) << message;
}

// The tokenizer's fingerprint, recorded since schema 5's binaries: a sweep that has one resumes
// only with the same tokenizer; one stored before it resumes (there is nothing to compare).
TEST(SweepSetup, TheTokenizerFingerprintIsComparedWhereItWasRecorded) {
  TempDir dir;
  db::Store store(dir.file("r.db"));
  db::SweepSpec spec = test_sweep("s");
  spec.config["tokenizer_hash"] = std::string(64, '1');
  start_or_resume_sweep(store, spec);
  db::SweepSpec other = spec;
  other.config["tokenizer_hash"] = std::string(64, '2');
  EXPECT_NE(refusal(store, other).find("tokenizer_hash: stored"), std::string::npos) << refusal(store, other);
  db::SweepSpec old = test_sweep("old");
  ASSERT_FALSE(old.config.contains("tokenizer_hash"));
  start_or_resume_sweep(store, old);
  old.config["tokenizer_hash"] = std::string(64, '2');
  EXPECT_TRUE(start_or_resume_sweep(store, old).resumed);
  // special_tokens, added with --special-tokens: "none" is what earlier binaries did.
  old.config["special_tokens"] = "none";
  EXPECT_TRUE(start_or_resume_sweep(store, old).resumed);
  old.config["special_tokens"] = "tokenizer";
  EXPECT_NE(refusal(store, old).find("special_tokens: stored \"none\", now \"tokenizer\""), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::coordinator
