// The coordinator as a unit (coordinator/coordinator.h): its sweep loop against scripted workers
// behind the Transport interface and a real store in a temporary database, deterministic and in
// milliseconds. Dispatch within the in-flight cap, a failure retried on another worker and
// failed for good after max_attempts, candidates whose jobs died out of attempts failed without
// being sent, attempts committed before a task leaves, preemption mid-turn (attempts refunded),
// resume by replay to the uninterrupted result, fine-tune admission after the budget points,
// duplicate results logged as stale and counted once, a worker that fails to start.
#include "coordinator/coordinator.h"

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/messages.h"
#include "core/sha256.h"
#include "db/database.h"
#include "db/sqlite.h"
#include "search/budget.h"
#include "tests/db/db_test_util.h"
#include "tests/search/search_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::coordinator {
namespace {
namespace fs = std::filesystem;

// `workers` scripted workers (ranks 1..workers). Each says hello on the first receive, then
// answers the tasks sent to it in the order they were sent, one message per receive call,
// through `behave`: the result it sends (nullopt: it sends none). Single-threaded, like the
// coordinator it serves.
class ScriptedWorkers : public comm::Transport {
 public:
  using Behaviour = std::function<std::optional<Result>(int rank, const Task& task)>;
  ScriptedWorkers(int workers, Behaviour behave) : workers_(workers), behave_(std::move(behave)), load_(size_t(workers + 1), 0) {}

  int rank() const override { return 0; }
  int size() const override { return workers_ + 1; }
  void send(int destination, comm::Tag tag, std::string payload) override {
    if (tag == comm::Tag::kStop) {
      ++stops_;
      return;
    }
    ASSERT_EQ(tag, comm::Tag::kTask);
    Task task = task_from_json(Json::parse(payload), "sent task");
    sent_.push_back({destination, task});
    if (on_send) on_send(destination, task);
    pending_.push_back({destination, task});
    max_load_ = std::max(max_load_, ++load_[size_t(destination)]);
  }
  std::optional<comm::Message> receive(double) override {
    if (hellos_sent_ < workers_) {
      ++hellos_sent_;
      Hello hello;
      hello.ok = hello_ok;
      hello.error = hello_ok ? "" : "out of memory loading the model";
      hello.host = "host" + std::to_string(hellos_sent_);
      hello.rank = hellos_sent_;
      return comm::Message{hellos_sent_, comm::Tag::kHello, hello_to_json(hello).dump()};
    }
    while (!pending_.empty()) {
      auto [rank, task] = pending_.front();
      pending_.pop_front();
      --load_[size_t(rank)];
      std::optional<Result> result = behave_(rank, task);
      if (!result) continue;
      result->candidate_id = task.candidate_id;
      result->worker_rank = rank;
      result->worker_host = "host" + std::to_string(rank);
      return comm::Message{rank, comm::Tag::kResult, result_to_json(*result).dump()};
    }
    return std::nullopt;
  }

  struct Sent {
    int rank;
    Task task;
  };
  const std::vector<Sent>& sent() const { return sent_; }
  int max_load() const { return max_load_; }
  int stops() const { return stops_; }
  bool hello_ok = true;
  std::function<void(int rank, const Task& task)> on_send;  // called as each task leaves

 private:
  int workers_;
  Behaviour behave_;
  std::vector<int> load_;
  std::deque<std::pair<int, Task>> pending_;
  std::vector<Sent> sent_;
  int hellos_sent_ = 0, max_load_ = 0, stops_ = 0;
};

// A deterministic objective value of a plan (what a worker would measure).
double value_of(const Plan& plan) { return double(std::stoull(sha256_hex(plan.canonical()).substr(0, 8), nullptr, 16)) / 4294967296.0; }

// A worker that does its job: the objective a search task asks for, a full evaluation's axes.
std::optional<Result> succeed(int, const Task& task) {
  Result r;
  if (task.kind == "search") {
    r.metrics.push_back({task.params.at("metric").get<std::string>(), value_of(task.plan), "nats"});
  } else {
    r.metrics = {{"task_acc_mean", 1.0 - value_of(task.plan), "ratio"},
                 {"param_bytes", 1000.0 * double(8 - task.plan.layers().size()), "bytes"},
                 {"speedup", 1.0 + 0.1 * double(task.plan.layers().size()), "ratio"}};
  }
  return r;
}

std::optional<Result> fail(const std::string& error) {
  Result r;
  r.ok = false;
  r.error = error;
  return r;
}

class Coordinator : public ::testing::Test {
 protected:
  // drop: LayerDrop, greedy over the 4 MoE layers, budget points at 1 and 2 layers (7 search
  // candidates, then the original and 2 budget points in full).
  std::unique_ptr<search::Strategy> strategy(const std::string& name = "drop", std::vector<int> experts_kept = {0}) {
    search::SearchConfig config;
    config.experts_kept = experts_kept;
    config.budgets = search::parse_budgets("layers:1-2", "--budgets");
    config.expert_objective = search::Objective{"js-hidden", "layer", 1.0};
    config.layer_objective = search::Objective{"js-logits", "model", 1.0};
    return search::make_strategy(name, search::testing::synthetic_shape(4, 4), config);
  }
  int64_t new_sweep(db::Store& store, const std::string& name = "s") { return store.create_sweep(testing::test_sweep(name)); }
  int64_t count(const std::string& sql) {
    db::Connection c = db::open_database(path_, db::OpenMode::kReadOnly);
    db::Statement s(c, sql);
    EXPECT_TRUE(s.step()) << sql;
    return s.column_int(0);
  }
  // DONE candidates by (stage, plan hash) with their metrics: what an uninterrupted run gives.
  std::map<std::string, std::map<std::string, double>> outcome() {
    db::Connection c = db::open_database(path_, db::OpenMode::kReadOnly);
    db::Statement s(c, "SELECT c.stage || ' ' || c.plan_hash, m.name, m.value FROM candidates c JOIN metrics m ON m.candidate_id = c.id "
                       "WHERE c.state = 'DONE'");
    std::map<std::string, std::map<std::string, double>> out;
    while (s.step()) out[s.column_text(0)][s.column_text(1)] = s.column_double(2);
    return out;
  }

  testing::TempDir dir_;
  std::string path_ = dir_.file("r.db");
  std::atomic<int> stop_{0};
};

TEST_F(Coordinator, RunsEveryCandidateOnceWithinTheInFlightCapAndStopsTheWorkers) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  ScriptedWorkers workers(3, succeed);
  CoordinatorOptions options;
  options.in_flight_per_worker = 2;
  auto s = strategy();
  SweepSummary summary = run_sweep(workers, store, sweep, *s, options, stop_);
  EXPECT_FALSE(summary.preempted);
  EXPECT_EQ(summary.failed, 0);
  EXPECT_EQ(summary.done, count("SELECT count(*) FROM candidates WHERE state = 'DONE'"));
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE state != 'DONE'"), 0);
  EXPECT_EQ(summary.dispatched, int64_t(workers.sent().size()));
  EXPECT_EQ(summary.done, summary.dispatched) << "every candidate sent once";
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE stage = 'full_eval'"), 3) << "the original and 2 budget points";
  EXPECT_LE(workers.max_load(), 2);
  EXPECT_EQ(workers.max_load(), 2) << "the cap was used";
  std::set<int> ranks;
  for (const auto& sent : workers.sent()) ranks.insert(sent.rank);
  EXPECT_EQ(ranks, (std::set<int>{1, 2, 3})) << "every worker got work";
  EXPECT_EQ(workers.stops(), 3);
  EXPECT_EQ(count("SELECT count(*) FROM sweeps WHERE state = 'DONE'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM router_stats"), 0) << "these hellos measured nothing";
}

TEST_F(Coordinator, AttemptsAreCommittedBeforeATaskLeaves) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  ScriptedWorkers workers(1, succeed);
  int checked = 0;
  workers.on_send = [&](int, const Task& task) {
    // Another connection sees the dispatch already: a job that dies now has used this attempt.
    EXPECT_EQ(count("SELECT attempts FROM candidates WHERE id = " + std::to_string(task.candidate_id) + " AND state = 'RUNNING'"),
              task.attempt);
    ++checked;
  };
  auto s = strategy();
  run_sweep(workers, store, sweep, *s, CoordinatorOptions(), stop_);
  EXPECT_GT(checked, 5);
}

TEST_F(Coordinator, AFailureIsRetriedOnAnotherWorkerAndFailsForGoodAfterMaxAttempts) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  std::optional<int64_t> flaky, broken;  // the first two search candidates sent
  ScriptedWorkers workers(3, [&](int rank, const Task& task) -> std::optional<Result> {
    if (task.kind == "search" && !flaky) flaky = task.candidate_id;
    else if (task.kind == "search" && !broken && task.candidate_id != *flaky) broken = task.candidate_id;
    if (task.candidate_id == *flaky && task.attempt == 1) return fail("rank " + std::to_string(rank) + " ran out of memory");
    if (broken && task.candidate_id == *broken) return fail("always fails");
    return succeed(rank, task);
  });
  CoordinatorOptions options;
  options.max_attempts = 3;
  auto s = strategy();
  SweepSummary summary = run_sweep(workers, store, sweep, *s, options, stop_);
  ASSERT_TRUE(flaky && broken);
  std::vector<int> flaky_ranks, broken_ranks;
  for (const auto& sent : workers.sent()) {
    if (sent.task.candidate_id == *flaky) flaky_ranks.push_back(sent.rank);
    if (sent.task.candidate_id == *broken) broken_ranks.push_back(sent.rank);
  }
  ASSERT_EQ(flaky_ranks.size(), 2u);
  EXPECT_NE(flaky_ranks[0], flaky_ranks[1]) << "the retry went to another worker";
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE id = " + std::to_string(*flaky) + " AND state = 'DONE' AND attempts = 2"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE kind = 'retry' AND candidate_id = " + std::to_string(*flaky)), 1);
  EXPECT_EQ(broken_ranks.size(), 3u) << "max_attempts dispatches";
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE id = " + std::to_string(*broken) +
                  " AND state = 'FAILED' AND attempts = 3 AND error = 'always fails'"),
            1);
  EXPECT_EQ(summary.failed, 1);
  EXPECT_EQ(count("SELECT count(*) FROM sweeps WHERE state = 'DONE'"), 1) << "the strategy went on without it";
}

TEST_F(Coordinator, ACandidateOutOfAttemptsFromDeadJobsIsFailedWithoutBeingSent) {
  {
    db::Store store(path_);
    const int64_t sweep = new_sweep(store);
    // The first run is stopped at once: its first candidates stay WAITING or PREEMPTED.
    ScriptedWorkers workers(1, [&](int rank, const Task& task) {
      stop_ = 15;
      return succeed(rank, task);
    });
    auto s = strategy();
    ASSERT_TRUE(run_sweep(workers, store, sweep, *s, CoordinatorOptions(), stop_).preempted);
  }
  // As if three jobs had died while running it: attempts are committed before each dispatch.
  const int64_t victim = count("SELECT min(id) FROM candidates WHERE state IN ('WAITING', 'PREEMPTED')");
  ASSERT_GT(victim, 0);
  {
    db::Connection c = db::open_database(path_, db::OpenMode::kReadWrite);
    c.exec("UPDATE candidates SET attempts = 3, state = 'RUNNING' WHERE id = " + std::to_string(victim));
  }
  stop_ = 0;
  db::Store store(path_);
  ScriptedWorkers workers(2, succeed);
  CoordinatorOptions options;
  options.max_attempts = 3;
  auto s = strategy();
  run_sweep(workers, store, 1, *s, options, stop_);
  for (const auto& sent : workers.sent()) EXPECT_NE(sent.task.candidate_id, victim) << "a candidate out of attempts was sent";
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE id = " + std::to_string(victim) +
                  " AND state = 'FAILED' AND error = 'the job died during each of its 3 attempts'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE kind = 'interrupted' AND candidate_id = " + std::to_string(victim)), 1)
      << "found RUNNING: the job had died with it";
}

TEST_F(Coordinator, APreemptionMidTurnRefundsTheInFlightAttemptsAndResumeReplaysToTheSameResult) {
  // The uninterrupted run, in its own database.
  const std::string whole_path = dir_.file("whole.db");
  {
    db::Store store(whole_path);
    ScriptedWorkers workers(2, succeed);
    auto s = strategy();
    run_sweep(workers, store, store.create_sweep(testing::test_sweep("s")), *s, CoordinatorOptions(), stop_);
  }
  int64_t answered = 0;
  {
    db::Store store(path_);
    const int64_t sweep = new_sweep(store);
    ScriptedWorkers workers(2, [&](int rank, const Task& task) -> std::optional<Result> {
      if (stop_.load()) return std::nullopt;  // the tasks still out when the signal came stay unanswered
      if (++answered == 2) stop_ = 15;        // a signal arrives while other tasks are out
      return succeed(rank, task);
    });
    CoordinatorOptions options;
    options.in_flight_per_worker = 2;
    auto s = strategy();
    SweepSummary summary = run_sweep(workers, store, sweep, *s, options, stop_);
    EXPECT_TRUE(summary.preempted);
    EXPECT_EQ(workers.stops(), 0) << "workers are not told to stop on preemption (the job ends)";
  }
  EXPECT_EQ(count("SELECT count(*) FROM sweeps WHERE state = 'PREEMPTED'"), 1);
  EXPECT_GE(count("SELECT count(*) FROM candidates WHERE state = 'PREEMPTED'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE state = 'PREEMPTED' AND attempts != 0"), 0) << "the stopped attempt does not count";
  EXPECT_EQ(count("SELECT count(*) FROM candidates WHERE state = 'RUNNING'"), 0);
  const int64_t done_before = count("SELECT count(*) FROM candidates WHERE state = 'DONE'");
  ASSERT_GE(done_before, 1);

  stop_ = 0;
  db::Store store(path_);
  ScriptedWorkers workers(2, succeed);
  auto s = strategy();
  SweepSummary resumed = run_sweep(workers, store, 1, *s, CoordinatorOptions(), stop_);
  EXPECT_EQ(resumed.replayed, done_before) << "stored results fed back, not recomputed";
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT candidate_id FROM events WHERE kind = 'done' GROUP BY candidate_id "
                  "HAVING count(*) > 1)"),
            0)
      << "no candidate is DONE twice";
  auto resumed_outcome = outcome();
  const std::string interrupted = path_;
  path_ = whole_path;
  EXPECT_EQ(resumed_outcome, outcome()) << "the same candidates and metrics as the uninterrupted run";
  path_ = interrupted;
}

TEST_F(Coordinator, FineTunesAreAdmittedAfterTheBudgetPointsAsTheirChildren) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  // A fine-tuned model's own timing comes out other than its parent's (noise, for one shape);
  // told that its parent's is recorded, the worker measures none.
  int unmeasured = 0;
  ScriptedWorkers workers(2, [&](int rank, const Task& task) {
    std::optional<Result> r = succeed(rank, task);
    if (task.kind == "finetune") {
      for (Metric& m : r->metrics) {
        if (m.name == "speedup") m.value += 0.37;
      }
      if (!task.params.value(kMeasureSpeedParam, true)) {
        ++unmeasured;
        r->metrics.erase(std::remove_if(r->metrics.begin(), r->metrics.end(), [](const Metric& m) { return m.name == "speedup"; }),
                         r->metrics.end());
      }
    }
    return r;
  });
  CoordinatorOptions options;
  FinetuneTask finetune;
  finetune.data = "/data/c4.jsonl";
  finetune.data_hash = std::string(64, 'd');
  finetune.steps = 7;
  finetune.state_dir = dir_.file("r.db.finetune");
  finetune.artifact_dir = dir_.file("r.db.artifacts");
  options.finetune = finetune;
  fs::create_directories(finetune.state_dir);
  options.in_flight_per_worker = 1;
  std::map<int64_t, bool> parent_done_at_send;  // budget points' fine-tunes
  std::set<int64_t> told_not_to_measure;
  std::vector<std::string> checkpoints;  // one per fine-tune, as a worker leaves it
  workers.on_send = [&](int, const Task& task) {
    if (task.kind == "finetune") {
      checkpoints.push_back(finetune.checkpoint_path(task.candidate_id));
      testing::write_file(checkpoints.back(), "optimizer state");
    }
    if (task.kind != "finetune" || task.plan.layers().empty()) return;
    const std::string id = std::to_string(task.candidate_id);
    parent_done_at_send[task.candidate_id] =
        count("SELECT count(*) FROM candidates c JOIN candidates p ON p.id = c.parent_id WHERE c.id = " + id + " AND p.state = 'DONE'") == 1;
    if (!task.params.value(kMeasureSpeedParam, true)) told_not_to_measure.insert(task.candidate_id);
  };
  auto s = strategy("cdmoe", {0});  // CD-MoE-S: condensing budget points
  run_sweep(workers, store, sweep, *s, options, stop_);
  // A child per condensing budget point (same plan, method + _ft), and the control.
  const int64_t points = count("SELECT count(*) FROM candidates WHERE stage = 'full_eval' AND plan_json LIKE '%condense%'");
  ASSERT_EQ(points, 2);
  EXPECT_EQ(count("SELECT count(*) FROM candidates c JOIN candidates p ON p.id = c.parent_id WHERE c.stage = 'finetune' "
                  "AND c.state = 'DONE' AND p.stage = 'full_eval' AND c.plan_hash = p.plan_hash AND c.method = p.method || '_ft'"),
            points + 1);
  EXPECT_EQ(count("SELECT count(*) FROM candidates c JOIN candidates p ON p.id = c.parent_id WHERE c.method = 'original_ft' "
                  "AND p.method = 'original' AND c.plan_json = '{\"layers\":{}}'"),
            1);
  // Each fine-tune task left after every budget point's full evaluation, with the template's
  // parameters; the control trains the blocks of every layer a point condenses.
  size_t last_full = 0, first_finetune = workers.sent().size();
  std::set<int> condensed;
  for (size_t i = 0; i < workers.sent().size(); ++i) {
    const Task& task = workers.sent()[i].task;
    if (task.kind == "full_eval") last_full = std::max(last_full, i);
    if (task.kind != "finetune") continue;
    first_finetune = std::min(first_finetune, i);
    FinetuneTask got = FinetuneTask::from_params(task.params, "task");
    EXPECT_EQ(got.data_hash, finetune.data_hash);
    EXPECT_EQ(got.steps, 7);
    if (got.train == "condensed") {
      for (const auto& [layer, lp] : task.plan.layers()) condensed.insert(layer);
    } else {
      EXPECT_EQ(got.train, "blocks");
      EXPECT_EQ(std::set<int>(got.layers.begin(), got.layers.end()), condensed) << "the control trains the condensed layers' blocks";
    }
  }
  EXPECT_LT(last_full, first_finetune) << "fine-tunes are admitted after the budget points";
  // One speed per architecture: each budget point's fine-tune records its parent's measurement.
  EXPECT_EQ(count("SELECT count(*) FROM results c JOIN results p ON p.candidate_id = c.parent_id WHERE c.stage = 'finetune' "
                  "AND c.method != 'original_ft' AND c.speedup = p.speedup AND c.speed_shared_from = p.candidate_id"),
            points);
  EXPECT_EQ(count("SELECT count(*) FROM results WHERE method = 'original_ft' AND speed_shared_from IS NULL"), 1)
      << "the control, which changed the original itself, shares nothing";
  // A budget point's fine-tune sent once its parent was DONE (with a speed) is told not to
  // measure it again; one sent earlier measures it (and records the parent's all the same).
  EXPECT_EQ(parent_done_at_send.size(), size_t(points));
  for (const auto& [candidate, parent_done] : parent_done_at_send) {
    EXPECT_EQ(told_not_to_measure.count(candidate) == 1, parent_done) << "candidate " << candidate;
  }
  EXPECT_EQ(size_t(unmeasured), told_not_to_measure.size());
  EXPECT_GT(unmeasured, 0) << "one task per worker at a time: the parents are done before their children leave";
  // Once a fine-tune is recorded DONE (its trained tensors kept), its checkpoint is deleted.
  EXPECT_EQ(checkpoints.size(), size_t(points + 1));
  for (const std::string& checkpoint : checkpoints) EXPECT_FALSE(fs::exists(checkpoint)) << checkpoint;
}

TEST_F(Coordinator, ADuplicateResultIsLoggedAsStaleAndCountedOnce) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  std::optional<int64_t> twice;
  std::vector<std::pair<int, Task>> echoes;
  ScriptedWorkers* self = nullptr;
  ScriptedWorkers workers(1, [&](int rank, const Task& task) {
    if (!twice) twice = task.candidate_id;
    return succeed(rank, task);
  });
  self = &workers;
  workers.on_send = [&](int rank, const Task& task) {
    if (twice && task.candidate_id != *twice && echoes.empty()) {
      // The first candidate's result arrives a second time (a retry that went elsewhere and the
      // original worker both answered): re-send it through the same worker.
      Task again;
      again.candidate_id = *twice;
      again.kind = "search";
      again.params = task.params;
      echoes.push_back({rank, again});
      self->send(rank, comm::Tag::kTask, task_to_json(again).dump());
    }
  };
  auto s = strategy();
  SweepSummary summary = run_sweep(workers, store, sweep, *s, CoordinatorOptions(), stop_);
  ASSERT_EQ(echoes.size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE kind = 'stale_result' AND candidate_id = " + std::to_string(*twice)), 1);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE kind = 'done' AND candidate_id = " + std::to_string(*twice)), 1);
  EXPECT_EQ(summary.done, count("SELECT count(*) FROM candidates WHERE state = 'DONE'"));
}

TEST_F(Coordinator, AWorkerThatFailsToStartEndsTheSweepWithItsError) {
  db::Store store(path_);
  const int64_t sweep = new_sweep(store);
  ScriptedWorkers workers(2, succeed);
  workers.hello_ok = false;
  auto s = strategy();
  try {
    run_sweep(workers, store, sweep, *s, CoordinatorOptions(), stop_);
    FAIL() << "ran without workers";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("failed to start: out of memory loading the model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cdmoe::coordinator
