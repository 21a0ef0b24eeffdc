// The sbatch template (slurm/cdmoe-sweep.sbatch) submitted as users submit it, to a throwaway
// one-node Slurm cluster on localhost (scripts/local-slurm): srun --mpi=pmix, a requeue in the
// middle of the sweep (SIGTERM to every task, as preemption sends) and the USR2 that comes
// before the time limit (the template then requeues the job itself). Each job must end, after
// its restart, exactly where an uninterrupted mpirun run ends.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "tests/apps/sweep_fixture.h"

namespace cdmoe {
namespace {

using testing::CommandResult;
using testing::count_rows;
using testing::expect_same_outcome;
using testing::read_file;
using testing::read_outcome;
using testing::run_command;
using testing::SweepCli;
using testing::SweepOutcome;
using testing::wait_for_done;
using testing::write_file;

const std::string kSource = CDMOE_SOURCE_DIR;

class SlurmSweep : public SweepCli {
 protected:
  static void SetUpTestSuite() {
    SweepCli::SetUpTestSuite();
    cluster_ = new std::string(file("slurm"));
    CommandResult started = run_command({kSource + "/scripts/local-slurm", "start", *cluster_});
    ASSERT_EQ(started.exit_code, 0) << started.err;
    setenv("SLURM_CONF", (*cluster_ + "/slurm.conf").c_str(), 1);
    setenv("CDMOE_BIN", CDMOE_BIN_DIR, 1);  // sbatch passes the environment on to the job

    std::string reference_db = file("reference.db");
    CommandResult r = run_command(mpi(2, sweep_args(reference_db, "s")));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    reference_ = new SweepOutcome(read_outcome(reference_db, "s"));
  }
  static void TearDownTestSuite() {
    if (cluster_) run_command({kSource + "/scripts/local-slurm", "stop", *cluster_});
    delete cluster_;
    delete reference_;
    SweepCli::TearDownTestSuite();
  }

  // Submits the template for the suite's sweep into `db` (its options in a config file, as the
  // template's comment suggests); returns the job id. The job's output goes to NAME.log.
  static std::string submit(const std::string& db, const std::string& name) {
    auto args = interruptible_sweep_args(db, "s");
    std::string config;
    for (size_t i = 0; i + 1 < args.size(); i += 2) config += args[i].substr(2) + " = " + args[i + 1] + "\n";
    write_file(file(name + ".ini"), config);
    CommandResult r = run_command({"/usr/bin/sbatch", "--parsable", "--ntasks=2", "--gpus-per-task=0",
                                   "--chdir=" + file(""), "--output=" + file(name + ".log"),
                                   kSource + "/slurm/cdmoe-sweep.sbatch", "--config", file(name + ".ini")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find_first_of(";\n"));
  }

  // Pending, running, completing or requeued: squeue still lists it.
  static bool listed(const std::string& job) {
    return !run_command({"/usr/bin/squeue", "-h", "-j", job, "-o", "%T"}).out.empty();
  }

  static void wait_until_gone(const std::string& job) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
    while (listed(job) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ASSERT_FALSE(listed(job)) << "job " << job << " still in the queue after 4 minutes";
  }

  // JobState of the job's last completion record (jobcomp/filetxt).
  static std::string final_state(const std::string& job) {
    std::string log = read_file(*cluster_ + "/jobcomp.txt");
    size_t at = log.rfind("JobId=" + job + " ");
    if (at == std::string::npos) return "";
    size_t state = log.find("JobState=", at);
    return log.substr(state + 9, log.find(' ', state) - state - 9);
  }

  // Submits, waits for some DONE candidates, interrupts with `interrupt` (given the job id), and
  // checks that the job came back by itself and finished the sweep exactly.
  static std::string interrupted_run(const std::string& name, const std::vector<std::string>& interrupt) {
    std::string db = file(name + ".db");
    std::string job = submit(db, name);
    if (!wait_for_done(db, 10, [&] { return listed(job); })) {
      ADD_FAILURE() << "job " << job << " reached no 10 DONE candidates while it ran";
      return "";
    }
    int64_t done_before = count_rows(db, "SELECT count(*) FROM candidates WHERE state = 'DONE'");
    EXPECT_LT(done_before, int64_t(reference_->done.size())) << "the sweep ended before the interruption";
    std::vector<std::string> command = interrupt;
    command.push_back(job);
    CommandResult sent = run_command(command);
    EXPECT_EQ(sent.exit_code, 0) << sent.err;
    wait_until_gone(job);

    std::string log = read_file(file(name + ".log"));
    EXPECT_NE(log.find("(restart 1)"), std::string::npos) << log;
    EXPECT_NE(log.find("resuming sweep \"s\" (was PREEMPTED)"), std::string::npos) << log;
    EXPECT_EQ(final_state(job), "COMPLETED") << read_file(*cluster_ + "/jobcomp.txt");
    SweepOutcome outcome = read_outcome(db, "s");
    EXPECT_EQ(outcome.state, "DONE");
    expect_same_outcome(*reference_, outcome, 1e-6);
    EXPECT_EQ(outcome.done_events_max, 1) << "a candidate was DONE twice";
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM events WHERE kind = 'sweep_resume'"), 1);
    return log;
  }

  static std::string* cluster_;
  static SweepOutcome* reference_;
};
std::string* SlurmSweep::cluster_ = nullptr;
SweepOutcome* SlurmSweep::reference_ = nullptr;

TEST_F(SlurmSweep, AnUninterruptedJobGivesTheMpirunResult) {
  std::string db = file("plain.db");
  std::string job = submit(db, "plain");
  wait_until_gone(job);
  std::string log = read_file(file("plain.log"));
  EXPECT_NE(log.find("cdmoe-sweep exited 0"), std::string::npos) << log;
  EXPECT_NE(log.find("Pareto front of sweep s"), std::string::npos) << log;
  EXPECT_NE(log.find("sweep: 48/48"), std::string::npos) << "--progress lines in the log: " << log;
  EXPECT_EQ(final_state(job), "COMPLETED");
  expect_same_outcome(*reference_, read_outcome(db, "s"), 1e-6);
  // srun placed a coordinator and a worker: the worker did every candidate.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE worker_rank <> 1"), 0);
}

TEST_F(SlurmSweep, ARequeuedJobResumesToTheUninterruptedResult) {
  // scontrol requeue ends the job as preemption does: SIGTERM to every task, then requeue.
  std::string log = interrupted_run("requeue", {"/usr/bin/scontrol", "requeue"});
  EXPECT_NE(log.find("preempted by signal 15"), std::string::npos) << log;
}

TEST_F(SlurmSweep, TheTimeLimitSignalStopsTheSweepAndTheTemplateRequeuesIt) {
  // What --signal=USR2@120 delivers before the time limit, sent now.
  std::string log = interrupted_run("usr2", {"/usr/bin/scancel", "--signal=USR2"});
  EXPECT_NE(log.find("preempted by signal 12"), std::string::npos) << log;
  EXPECT_NE(log.find("cdmoe-sweep exited 75"), std::string::npos) << log;
}

}  // namespace
}  // namespace cdmoe
