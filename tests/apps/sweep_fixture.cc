#include "tests/apps/sweep_fixture.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/messages.h"
#include "db/database.h"
#include "db/sqlite.h"

namespace cdmoe::testing {

const std::string kSweep = std::string(CDMOE_BIN_DIR) + "/cdmoe-sweep";
const std::string kMpirun = "/usr/bin/mpirun";

TempDir* SweepCli::dir_ = nullptr;

void SweepCli::SetUpTestSuite() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  dir_ = new TempDir();
  CommandResult r = run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-synth", "--out", model(), "--tokenizer",
                                 std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2/tokenizer.json",
                                 "--hidden", "32", "--layers", "4", "--experts", "6", "--top-k", "2",
                                 "--expert-inner", "16", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string calib;
  for (int i = 0; i < 12; ++i) {
    calib += "Document " + std::to_string(i) + ": experts are condensed into one dense layer, and the router "
             "is gone; the shared experts stay for every token.\n";
  }
  write_file(file("calib.txt"), calib);
  write_file(file("task.jsonl"),
             "{\"context\": \"The sky is\", \"choices\": [\"blue\", \"green\"], \"gold\": 0}\n"
             "{\"context\": \"Water is\", \"choices\": [\"wet\", \"dry\", \"loud\"], \"gold\": 0}\n"
             "{\"context\": \"Two plus two is\", \"choices\": [\"four\", \"five\"], \"gold\": 0}\n");
}

void SweepCli::TearDownTestSuite() {
  delete dir_;
  dir_ = nullptr;
}

std::vector<std::string> SweepCli::sweep_args(const std::string& db, const std::string& name) {
  return {"--model", model(), "--calib", file("calib.txt"), "--calib-samples", "8", "--seq-len", "24", "--db", db,
          "--sweep", name, "--experts-kept", "0,2", "--budgets", "layers:1-2", "--tasks", file("task.jsonl"),
          "--speed-repeats", "2", "--speed-max-s", "0", "--threads", "1"};
}

std::vector<std::string> SweepCli::interruptible_sweep_args(const std::string& db, const std::string& name) {
  std::vector<std::string> args = sweep_args(db, name);
  *(std::find(args.begin(), args.end(), "--speed-repeats") + 1) = "100";
  return args;
}

std::vector<std::string> SweepCli::local(std::vector<std::string> args) {
  args.insert(args.begin(), kSweep);
  return args;
}

std::vector<std::string> SweepCli::mpi(int ranks, std::vector<std::string> args) {
  std::vector<std::string> argv = {kMpirun, "--oversubscribe", "-np", std::to_string(ranks), kSweep};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}


SweepOutcome read_outcome(const std::string& db_path, const std::string& sweep) {
  db::Connection db = db::open_database(db_path, db::OpenMode::kReadOnly);
  SweepOutcome outcome;
  db::Statement state(db, "SELECT state FROM sweeps WHERE name = ?");
  state.bind(1, sweep);
  if (state.step()) outcome.state = state.column_text(0);
  db::Statement rows(db,
                     "SELECT c.stage || ' ' || c.plan_hash, c.state, m.name, m.value FROM candidates c "
                     "JOIN sweeps w ON w.id = c.sweep_id LEFT JOIN metrics m ON m.candidate_id = c.id "
                     "WHERE w.name = ?");
  rows.bind(1, sweep);
  while (rows.step()) {
    std::string key = rows.column_text(0), st = rows.column_text(1);
    if (st == "DONE") {
      auto& metrics = outcome.done[key];
      if (!rows.column_is_null(2) && !run_dependent_metric(rows.column_text(2))) {
        metrics[rows.column_text(2)] = rows.column_is_null(3) ? NAN : rows.column_double(3);
      }
    } else if (st == "FAILED") {
      outcome.failed.insert(key);
    } else if (st == "RUNNING") {
      ++outcome.running;
    }
  }
  db::Statement events(db,
                       "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM events e JOIN sweeps w ON "
                       "w.id = e.sweep_id WHERE w.name = ? AND e.kind = 'done' GROUP BY e.candidate_id)");
  events.bind(1, sweep);
  events.step();
  outcome.done_events_max = events.column_int(0);
  return outcome;
}

void expect_same_outcome(const SweepOutcome& a, const SweepOutcome& b, double tolerance) {
  ASSERT_EQ(a.done.size(), b.done.size());
  for (const auto& [key, metrics] : a.done) {
    auto other = b.done.find(key);
    ASSERT_NE(other, b.done.end()) << key << " is DONE in one run only";
    ASSERT_EQ(metrics.size(), other->second.size()) << key;
    for (const auto& [name, value] : metrics) {
      double v = other->second.at(name);
      EXPECT_NEAR(value, v, tolerance * std::max(1.0, std::abs(value))) << key << " " << name;
    }
  }
  EXPECT_EQ(a.failed, b.failed);
}

int64_t count_rows(const std::string& db_path, const std::string& sql) {
  db::Connection db = db::open_database(db_path, db::OpenMode::kReadOnly);
  db::Statement s(db, sql);
  s.step();
  return s.column_int(0);
}

namespace {

// Whether a live process other than this one has `needle` among its command-line arguments.
bool process_with_argument_running(const std::string& needle) {
  std::error_code error;  // processes come and go while /proc is listed
  for (std::filesystem::directory_iterator it("/proc", error), end; !error && it != end; it.increment(error)) {
    const std::filesystem::directory_entry& entry = *it;
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(getpid())) continue;
    std::ifstream cmdline(entry.path() / "cmdline", std::ios::binary);
    std::string argument;
    while (std::getline(cmdline, argument, '\0')) {
      if (argument == needle) return true;
    }
  }
  return false;
}

}  // namespace

void wait_for_lease_holder_to_exit(const std::string& db_path) {
  const bool gone = wait_until(60, [&] {
    if (process_with_argument_running(db_path)) return false;
    if (!std::filesystem::exists(db_path)) return true;
    int64_t pid = 0;
    try {
      pid = count_rows(db_path, "SELECT coalesce(max(pid), 0) FROM sweep_leases");
    } catch (const std::exception&) {  // no lease table yet
      return true;
    }
    return pid <= 0 || (kill(pid_t(pid), 0) != 0 && errno == ESRCH);
  });
  if (!gone) ADD_FAILURE() << "a process of the job on " << db_path << " is still running 60 s after the job was killed";
}

bool wait_for_done(const std::string& db_path, int64_t done, const std::function<bool()>& running) {
  return wait_until(120, [&] {
    if (!std::filesystem::exists(db_path)) return !running();
    try {
      if (count_rows(db_path, "SELECT count(*) FROM candidates WHERE state = 'DONE'") >= done) return true;
    } catch (const std::exception&) {  // not created yet
    }
    return !running();
  }) && std::filesystem::exists(db_path) && count_rows(db_path, "SELECT count(*) FROM candidates WHERE state = 'DONE'") >= done;
}

}  // namespace cdmoe::testing
