#include "db/store.h"

#include <atomic>
#include <cmath>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/build_info.h"
#include "core/error.h"
#include "core/sha256.h"
#include "db/database.h"
#include "db/report_queries.h"
#include "tests/db/db_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::db {
namespace {

using cdmoe::testing::numbered_candidates;
using cdmoe::testing::result_with_metrics;
using cdmoe::testing::TempDir;
using cdmoe::testing::test_sweep;

int64_t scalar(Connection& c, const std::string& sql) {
  Statement s(c, sql);
  EXPECT_TRUE(s.step()) << sql;
  return s.column_int(0);
}

TEST(Store, RecordsSweepProvenance) {
  TempDir dir;
  Store store(dir.file("r.db"));
  SweepSpec spec = test_sweep("deepseek-sr");
  int64_t id = store.create_sweep(spec);
  auto row = store.find_sweep("deepseek-sr");
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->id, id);
  EXPECT_EQ(row->state, "RUNNING");
  EXPECT_EQ(row->strategy, "cdmoe");
  EXPECT_EQ(row->config_json, spec.config.dump());
  EXPECT_EQ(row->config_hash, sha256_hex(spec.config.dump()));
  EXPECT_EQ(row->git_commit, git_commit());
  EXPECT_FALSE(row->git_commit.empty());
  EXPECT_FALSE(row->host.empty());
  EXPECT_EQ(row->model_hash, spec.model_hash);
  EXPECT_EQ(row->seed, 7);
  EXPECT_FALSE(row->started_at.empty());
  EXPECT_TRUE(row->finished_at.empty());
  EXPECT_FALSE(store.find_sweep("other").has_value());
  EXPECT_EQ(scalar(store.connection(), "SELECT count(*) FROM events WHERE kind = 'sweep_start'"), 1);
  EXPECT_THROW(store.create_sweep(spec), Error) << "sweep names are unique";

  store.set_sweep_state(id, "DONE");
  row = store.find_sweep("deepseek-sr");
  EXPECT_EQ(row->state, "DONE");
  EXPECT_FALSE(row->finished_at.empty());
}

TEST(Store, RouterStatisticsAreStoredOncePerSweep) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  EXPECT_FALSE(store.record_routing(sweep, {}, 1)) << "nothing measured, nothing stored";
  EXPECT_TRUE(store.record_routing(sweep, {{1, 0, 30, 0.5}, {1, 1, 10, 0.25}, {1, -1, 20, 0.9}}, 1));
  EXPECT_FALSE(store.record_routing(sweep, {{1, 0, 99, 0.1}}, 2)) << "the first worker's measurement stays";
  Connection& c = store.connection();
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM router_stats"), 3);
  EXPECT_EQ(scalar(c, "SELECT tokens FROM router_stats WHERE layer = 1 AND expert = 0"), 30);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'router_stats' AND rank = 1"), 1);
  // A duplicate row rolls the whole batch back.
  int64_t other = store.create_sweep(test_sweep("t"));
  EXPECT_THROW(store.record_routing(other, {{1, 0, 1, 1}, {1, 0, 2, 1}}, 1), Error);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM router_stats WHERE sweep_id = " + std::to_string(other)), 0);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'router_stats'"), 1);
}

TEST(Store, CandidatesAreUniquePerStageAndPlan) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  Plan a = Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[3,2]}}})", "a");
  Plan a_again = Plan::parse(R"({"layers":{"1":{"op":"condense","experts":[2,3]}}})", "a2");
  auto ids = store.add_candidates(sweep, {{"expert_select", "cdmoe", a, {}, ""},
                                          {"expert_select", "cdmoe", a_again, {}, ""},
                                          {"final", "cdmoe_sr", a, {}, "layers:1"}});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_NE(ids[0], ids[2]);
  auto rows = store.candidates(sweep);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].plan_json, a.canonical());
  EXPECT_EQ(rows[0].plan_hash, a.hash());
  EXPECT_EQ(rows[0].state, CandidateState::kWaiting);
  EXPECT_EQ(rows[1].budget, "layers:1");
  auto child = store.add_candidates(sweep, {{"layer_select", "cdmoe", Plan(), ids[0], ""}});
  EXPECT_EQ(*store.candidates(sweep).back().parent_id, ids[0]);
  EXPECT_EQ(child[0], store.candidates(sweep).back().id);
}

TEST(Store, DispatchCountsAttemptsAndResultsCommitWithMetrics) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  int64_t id = store.add_candidates(sweep, numbered_candidates(0, 1))[0];
  store.mark_dispatched(id, 2, "node-a");
  EXPECT_THROW(store.mark_dispatched(id, 3, "node-b"), Error) << "already RUNNING";
  store.requeue({id}, CandidateState::kWaiting, "retry");
  store.mark_dispatched(id, 3, "node-b");
  auto rows = store.candidates(sweep, CandidateState::kRunning);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempts, 2);

  Result result = result_with_metrics(id, 3);
  result.finetune_steps = {{1, 3.0, 1e-4, 512}, {2, 2.5, 1e-4, 1024}};
  store.record_result(result);
  EXPECT_EQ(store.candidates(sweep, CandidateState::kDone).size(), 1u);
  EXPECT_THROW(store.mark_dispatched(id, 2, "node-a"), Error) << "a DONE candidate never runs again";
  Connection& c = store.connection();
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM metrics WHERE candidate_id = " + std::to_string(id)), 3);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM finetune_steps WHERE candidate_id = " + std::to_string(id)), 2);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'dispatch'"), 2);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'retry'"), 1);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'done'"), 1);
  // The results view grew one column per metric.
  Statement view(c, "SELECT candidate_id, state, m0, m2 FROM results");
  ASSERT_TRUE(view.step());
  EXPECT_EQ(view.column_int(0), id);
  EXPECT_EQ(view.column_text(1), "DONE");
  EXPECT_DOUBLE_EQ(view.column_double(3), double(id) + 0.02);
}

// A result's artifacts commit with it; a failed result's are not recorded (nothing to export).
TEST(Store, ArtifactsAreRecordedWithAnOkResultOnly) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  std::vector<int64_t> ids = store.add_candidates(sweep, numbered_candidates(0, 2));
  for (int64_t id : ids) store.mark_dispatched(id, 1, "h");
  Result ok = result_with_metrics(ids[0], 1), failed = result_with_metrics(ids[1], 1);
  ok.artifacts = {{"trained_tensors", "r.db.artifacts/a.safetensors", std::string(64, 'a'), 1234}};
  failed.artifacts = {{"trained_tensors", "r.db.artifacts/b.safetensors", std::string(64, 'b'), 99}};
  failed.ok = false;
  failed.error = "loss not finite";
  store.record_results({ok, failed});
  Statement row(store.connection(), "SELECT candidate_id, kind, path, sha256, bytes FROM artifacts");
  ASSERT_TRUE(row.step());
  EXPECT_EQ(row.column_int(0), ids[0]);
  EXPECT_EQ(row.column_text(1), "trained_tensors");
  EXPECT_EQ(row.column_text(2), "r.db.artifacts/a.safetensors");
  EXPECT_EQ(row.column_text(3), std::string(64, 'a'));
  EXPECT_EQ(row.column_int(4), 1234);
  EXPECT_FALSE(row.step()) << "the failed result's artifact is not recorded";
}

TEST(Store, StaleOrDuplicateResultIsIgnored) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  int64_t id = store.add_candidates(sweep, numbered_candidates(0, 1))[0];
  store.mark_dispatched(id, 1, "h");
  store.record_result(result_with_metrics(id, 2));
  Result second = result_with_metrics(id, 2);
  second.metrics[0].value = 999;
  store.record_result(second);  // not RUNNING any more
  Connection& c = store.connection();
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'done'"), 1);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM events WHERE kind = 'stale_result'"), 1);
  Statement value(c, "SELECT value FROM metrics WHERE name = 'm0'");
  ASSERT_TRUE(value.step());
  EXPECT_DOUBLE_EQ(value.column_double(0), double(id));
}

TEST(Store, ABadResultRollsBackTheWholeBatch) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  auto ids = store.add_candidates(sweep, numbered_candidates(0, 2));
  for (int64_t id : ids) store.mark_dispatched(id, 1, "h");
  Result bad = result_with_metrics(ids[1], 2);
  bad.metrics.push_back({"state", 1.0, ""});  // would shadow a column of the results view
  EXPECT_THROW(store.record_results({result_with_metrics(ids[0], 2), bad}), Error);
  Connection& c = store.connection();
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM metrics"), 0);
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM metric_names"), 0);
  EXPECT_EQ(store.candidates(sweep, CandidateState::kRunning).size(), 2u);
  // The store still works, and the names rolled back are registered again when they come.
  store.record_results({result_with_metrics(ids[0], 2)});
  EXPECT_EQ(scalar(c, "SELECT count(*) FROM results WHERE m1 IS NOT NULL"), 1);
}

// Whole-unit writes grouped into one commit (how the coordinator commits a loop turn): nothing
// is visible or durable until the outer transaction commits; a failed inner write undoes only
// itself; an outer rollback undoes them all.
TEST(Store, WritesNestInsideAnOuterTransaction) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  auto ids = store.add_candidates(sweep, numbered_candidates(0, 3));
  Connection reader = open_database(dir.file("r.db"), OpenMode::kReadOnly);
  {
    Transaction turn(store.connection());
    store.record_results({result_with_metrics(ids[0], 2)});  // stale (never dispatched): logged only
    store.mark_dispatched({{ids[0], 1, "h"}, {ids[1], 1, "h"}});
    store.record_results({result_with_metrics(ids[0], 2)});
    Result bad = result_with_metrics(ids[1], 2);
    bad.metrics.push_back({"state", 1.0, ""});
    EXPECT_THROW(store.record_results({bad}), Error);  // undoes itself, not the turn
    EXPECT_EQ(scalar(reader, "SELECT count(*) FROM candidates WHERE state = 'DONE'"), 0) << "not before the commit";
    turn.commit();
  }
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM candidates WHERE state = 'DONE'"), 1);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM candidates WHERE state = 'RUNNING'"), 1);
  {
    Transaction abandoned(store.connection());
    store.mark_dispatched({{ids[2], 1, "h"}});
  }  // no commit: rolled back
  EXPECT_EQ(scalar(reader, "SELECT attempts FROM candidates WHERE id = " + std::to_string(ids[2])), 0);
}

TEST(Store, DuplicateMetricInAResultIsRefused) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  int64_t id = store.add_candidates(sweep, numbered_candidates(0, 1))[0];
  store.mark_dispatched(id, 1, "h");
  Result twice = result_with_metrics(id, 2);
  twice.metrics.push_back(twice.metrics[0]);
  try {
    store.record_result(twice);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metric \"m0\" twice"), std::string::npos) << e.what();
  }
  EXPECT_EQ(scalar(store.connection(), "SELECT count(*) FROM metrics"), 0);
}

TEST(Store, RequeueAndPreempt) {
  TempDir dir;
  Store store(dir.file("r.db"));
  int64_t sweep = store.create_sweep(test_sweep("s"));
  auto ids = store.add_candidates(sweep, numbered_candidates(0, 3));
  for (int64_t id : ids) store.mark_dispatched(id, 1, "h");
  store.requeue({ids[0]}, CandidateState::kWaiting, "retry");
  store.requeue({ids[1], ids[2]}, CandidateState::kPreempted, "preempted");
  EXPECT_EQ(store.candidates(sweep, CandidateState::kWaiting).size(), 1u);
  EXPECT_EQ(store.candidates(sweep, CandidateState::kPreempted).size(), 2u);
  EXPECT_EQ(scalar(store.connection(), "SELECT count(*) FROM events WHERE kind = 'preempted'"), 2);
  EXPECT_THROW(store.requeue({ids[0]}, CandidateState::kDone, "x"), Error);
}

struct Point {
  int64_t id;
  double accuracy, memory, speed;
  double speed_low = NAN, speed_high = NAN;  // the speed's interval; NaN: none (a point)
};

// Brute-force reference for the SQL view: speeds inside both intervals are a tie.
std::set<int64_t> non_dominated(const std::vector<Point>& points) {
  auto inside = [](double x, const Point& p) {
    return x >= (std::isnan(p.speed_low) ? p.speed : p.speed_low) && x <= (std::isnan(p.speed_high) ? p.speed : p.speed_high);
  };
  std::set<int64_t> front;
  for (const Point& p : points) {
    bool dominated = false;
    for (const Point& q : points) {
      bool tie = inside(q.speed, p) && inside(p.speed, q);
      bool no_worse = q.accuracy >= p.accuracy && q.memory <= p.memory && (q.speed >= p.speed || tie);
      bool better = q.accuracy > p.accuracy || q.memory < p.memory || (q.speed > p.speed && !tie);
      dominated = dominated || (no_worse && better);
    }
    if (!dominated) front.insert(p.id);
  }
  return front;
}

TEST(Store, ParetoViewMatchesBruteForce) {
  TempDir dir;
  Store store(dir.file("r.db"));
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 6; ++trial) {
    SweepSpec spec = test_sweep("sweep" + std::to_string(trial));
    const bool intervals = trial >= 4;  // speed-ups measured with their confidence intervals
    if (trial == 3) spec.axes = ParetoAxes{"piqa_acc_norm", "peak_bytes", "tokens_per_s"};
    int64_t sweep = store.create_sweep(spec);
    auto ids = store.add_candidates(sweep, numbered_candidates(0, 60));
    std::vector<Point> points;
    std::vector<Result> results;
    for (size_t i = 0; i < ids.size(); ++i) {
      store.mark_dispatched(ids[i], 1, "h");
      // Coarse values so that ties happen.
      Point p{ids[i], double(rng() % 8) / 8, double(1 + rng() % 6) * 1e9, 1 + double(rng() % 5) / 4};
      Result r;
      r.candidate_id = ids[i];
      r.ok = i % 17 != 5;  // FAILED candidates never count
      r.metrics = {{spec.axes.accuracy, p.accuracy, "ratio"},
                   {spec.axes.memory, p.memory, "bytes"},
                   {spec.axes.speed, p.speed, "ratio"}};
      if (intervals && i % 7 != 3) {  // a few without one (older or one-pair evaluations)
        p.speed_low = p.speed - double(rng() % 3) * 0.15;
        p.speed_high = p.speed + double(rng() % 3) * 0.15;
        r.metrics.push_back({spec.axes.speed + "_ci_low", p.speed_low, "ratio"});
        r.metrics.push_back({spec.axes.speed + "_ci_high", p.speed_high, "ratio"});
      }
      bool complete = i % 13 != 4;
      if (!complete) r.metrics.erase(r.metrics.begin() + 2);  // a point lacking an axis is not a point
      if (i % 11 == 2) r.metrics.push_back({"wikitext_ppl", 2.0, ""});  // other metrics are noise
      if (r.ok && complete) points.push_back(p);
      results.push_back(r);
    }
    store.record_results(results);
    Table table = pareto_table(store.connection(), spec.name);
    std::set<int64_t> got;
    for (const auto& row : table.rows) got.insert(std::get<int64_t>(row[0]));
    EXPECT_EQ(got, non_dominated(points)) << "trial " << trial;
    EXPECT_FALSE(got.empty());
    EXPECT_EQ(table.columns[4], spec.axes.accuracy);
    EXPECT_EQ(table.columns[7], spec.axes.speed + "_ci_low");
  }
}

// The tie rule by example: B is 5% faster than A but inside both intervals, and A is more
// accurate: B is dominated; with narrow intervals it is not.
TEST(Store, ParetoTiesSpeedsInsideBothIntervals) {
  TempDir dir;
  Store store(dir.file("r.db"));
  for (double half_width : {0.08, 0.01}) {
    SweepSpec spec = test_sweep("w" + std::to_string(half_width));
    int64_t sweep = store.create_sweep(spec);
    auto ids = store.add_candidates(sweep, numbered_candidates(0, 2));
    std::vector<Result> results;
    const double accuracy[] = {0.60, 0.59}, speed[] = {1.00, 1.05};
    for (size_t i = 0; i < 2; ++i) {
      store.mark_dispatched(ids[i], 1, "h");
      Result r;
      r.candidate_id = ids[i];
      r.metrics = {{"task_acc_mean", accuracy[i], "ratio"}, {"param_bytes", 1e9, "bytes"}, {"speedup", speed[i], "ratio"},
                   {"speedup_ci_low", speed[i] * (1 - half_width), "ratio"},
                   {"speedup_ci_high", speed[i] * (1 + half_width), "ratio"}};
      results.push_back(r);
    }
    store.record_results(results);
    Table table = pareto_table(store.connection(), spec.name);
    EXPECT_EQ(table.rows.size(), half_width > 0.05 ? 1u : 2u) << "half-width " << half_width;
    EXPECT_EQ(std::get<int64_t>(table.rows[0][0]), ids[0]);
  }
}

// A reader on its own connection never sees a DONE candidate without all its metrics, and
// is never blocked by the writer.
TEST(Store, ConcurrentReaderNeverSeesHalfAResult) {
  TempDir dir;
  std::string path = dir.file("r.db");
  Store store(path);
  int64_t sweep = store.create_sweep(test_sweep("s"));
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0}, torn{0};
  std::atomic<int64_t> max_seen{0};
  std::thread reader([&] {
    Connection c = open_database(path, OpenMode::kReadOnly);
    Statement check(c, "SELECT (SELECT count(*) FROM candidates WHERE state = 'DONE'), "
                       "(SELECT count(*) FROM candidates c WHERE c.state = 'DONE' AND "
                       " (SELECT count(*) FROM metrics m WHERE m.candidate_id = c.id) != 10)");
    // Reads while the writer writes, and once more after it is done (so a reader starved by a
    // busy machine still checks something).
    bool last = false;
    while (!last) {
      last = !writing;
      ASSERT_TRUE(check.step());
      max_seen = std::max<int64_t>(max_seen, check.column_int(0));
      torn += int(check.column_int(1) != 0);
      check.reset();
      ++reads;
    }
  });
  for (int batch = 0; batch < 200; ++batch) {
    auto ids = store.add_candidates(sweep, numbered_candidates(batch * 5, 5));
    std::vector<Result> results;
    for (int64_t id : ids) {
      store.mark_dispatched(id, 1, "h");
      results.push_back(result_with_metrics(id));
    }
    store.record_results(results);
  }
  writing = false;
  reader.join();
  EXPECT_EQ(torn, 0);
  EXPECT_GT(reads, 0);
  EXPECT_EQ(max_seen, 1000) << "the last read sees every committed result";
  EXPECT_EQ(store.candidates(sweep, CandidateState::kDone).size(), 1000u);
}

}  // namespace
}  // namespace cdmoe::db
