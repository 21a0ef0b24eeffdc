// Shared by the cdmoe-sweep end-to-end suites (mpirun and Slurm): a tiny random checkpoint
// written once per test process with the real cdmoe-synth, the sweep every test runs, and how
// two finished sweeps are compared (DONE candidates by stage and plan, deterministic metrics).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cdmoe::testing {

extern const std::string kSweep;
extern const std::string kMpirun;

// A 4-layer model (3 MoE layers of 6 experts) with Llama-2's tokenizer, calibration text and a
// small multiple-choice task, under a TempDir that lives as long as the suite.
class SweepCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  static std::string model() { return dir_->file("model"); }
  static std::string file(const std::string& name) { return dir_->file(name); }

  // The sweep every test runs (48 candidates), with its database and name.
  static std::vector<std::string> sweep_args(const std::string& db, const std::string& name);
  // The same sweep, its full evaluations timing 100 speed pairs each (seconds in all): a test
  // that signals it after its first DONE candidates still finds it running, now that the search
  // itself takes well under a second. The same results but the run-dependent speed metrics.
  static std::vector<std::string> interruptible_sweep_args(const std::string& db, const std::string& name);
  static std::vector<std::string> local(std::vector<std::string> args);
  static std::vector<std::string> mpi(int ranks, std::vector<std::string> args);

  static TempDir* dir_;
};

// What a finished sweep is, for comparisons: DONE candidates by (stage, plan hash) with their
// deterministic metrics (timings and RSS vary between runs and are left out).
struct SweepOutcome {
  std::map<std::string, std::map<std::string, double>> done;
  std::set<std::string> failed;
  std::string state;
  int64_t done_events_max = 0;  // most "done" events of any one candidate
  int64_t running = 0;
};

SweepOutcome read_outcome(const std::string& db_path, const std::string& sweep);
// Same DONE and FAILED sets, metrics within `tolerance` (relative, absolute below 1).
void expect_same_outcome(const SweepOutcome& a, const SweepOutcome& b, double tolerance);
// The first column of the first row of `sql` on the database, read-only.
int64_t count_rows(const std::string& db_path, const std::string& sql);
// Waits (up to 120 s) until the sweep has at least `done` DONE candidates; false when it did not
// come (the job ended first, or the time ran out), which the caller asserts against: a test
// never goes on as if the state it needs had come.
[[nodiscard]] bool wait_for_done(const std::string& db_path, int64_t done, const std::function<bool()>& running);
// After a SIGKILLed mpirun: its ranks (each in its own process group) end only when they notice,
// and a coordinator still alive holds the sweep's lease, or takes it after the kill when it was
// still reading its inputs. Waits (up to 60 s) until no process of that job is left (none whose
// command line names the database) and none holds a lease, as a Slurm requeue does after
// killing the job step; a test failure when they do not go.
void wait_for_lease_holder_to_exit(const std::string& db_path);

}  // namespace cdmoe::testing
