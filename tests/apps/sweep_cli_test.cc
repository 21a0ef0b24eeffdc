// End-to-end: the real cdmoe-sweep binary, alone (in-process worker) and under
// `mpirun --oversubscribe -np 3`, on a tiny random checkpoint the suite writes with the real
// cdmoe-synth. Covers determinism across rank counts, the pareto view, signals, SIGKILL and
// resume, retries, crashes, and bad input.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "core/json_fields.h"
#include "db/database.h"
#include "db/sqlite.h"
#include "model/device.h"
#include "tests/apps/sweep_fixture.h"

namespace cdmoe {
namespace {

using testing::BackgroundCommand;
using testing::CommandResult;
using testing::count_rows;
using testing::expect_same_outcome;
using testing::kSweep;
using testing::read_outcome;
using testing::run_command;
using testing::SweepCli;
using testing::SweepOutcome;
using testing::wait_for_done;
using testing::write_file;

TEST_F(SweepCli, OneRankAndThreeRanksChooseTheSamePlansAndMetrics) {
  std::string db1 = file("np1.db"), db3 = file("np3.db");
  CommandResult one = run_command(local(sweep_args(db1, "s")));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  CommandResult three = run_command(mpi(3, sweep_args(db3, "s")));
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_NE(three.out.find("Pareto front of sweep s"), std::string::npos) << three.out;

  SweepOutcome a = read_outcome(db1, "s"), b = read_outcome(db3, "s");
  EXPECT_EQ(a.state, "DONE");
  EXPECT_EQ(b.state, "DONE");
  // 3 MoE layers: expert rounds of 6 + 5 candidates each, layer steps of 3 + 2 per k; the
  // original and 2 budgets per k evaluated in full.
  EXPECT_EQ(a.done.size(), size_t(3 * 11 + 2 * 5 + 1 + 4));
  expect_same_outcome(a, b, 1e-6);
  EXPECT_EQ(b.done_events_max, 1);
  // Both workers of the three-rank job did work.
  EXPECT_EQ(count_rows(db3, "SELECT count(DISTINCT worker_rank) FROM candidates"), 2);
  EXPECT_EQ(count_rows(db1, "SELECT count(*) FROM candidates WHERE worker_rank <> 0"), 0);

  // The pareto view: exactly the full evaluations no other full evaluation dominates, checked
  // here from the results view independently of the view's SQL.
  db::Connection db = db::open_database(db3, db::OpenMode::kReadOnly);
  // Speeds inside both points' 95% intervals are a tie (two pairs each: every interval measured).
  db::Statement all(db, "SELECT candidate_id, task_acc_mean, param_bytes, speedup, speedup_ci_low, speedup_ci_high "
                        "FROM results WHERE stage = 'full_eval'");
  struct Point {
    int64_t id;
    double acc, mem, speed, low, high;
  };
  std::vector<Point> points;
  while (all.step()) {
    points.push_back({all.column_int(0), all.column_double(1), all.column_double(2), all.column_double(3),
                      all.column_double(4), all.column_double(5)});
    EXPECT_LE(points.back().low, points.back().speed);
    EXPECT_GE(points.back().high, points.back().speed);
  }
  ASSERT_EQ(points.size(), 5u);
  std::set<int64_t> expected;
  for (const Point& p : points) {
    bool dominated = false;
    for (const Point& q : points) {
      bool tie = q.speed >= p.low && q.speed <= p.high && p.speed >= q.low && p.speed <= q.high;
      bool no_worse = q.acc >= p.acc && q.mem <= p.mem && (q.speed >= p.speed || tie);
      bool better = q.acc > p.acc || q.mem < p.mem || (q.speed > p.speed && !tie);
      dominated = dominated || (no_worse && better);
    }
    if (!dominated) expected.insert(p.id);
  }
  db::Statement front(db, "SELECT candidate_id FROM pareto");
  std::set<int64_t> got;
  while (front.step()) got.insert(front.column_int(0));
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(got.empty());
  // Every full evaluation has its reference row: the original, param_ratio 1.
  EXPECT_EQ(count_rows(db3, "SELECT count(*) FROM results WHERE method = 'original' AND param_ratio = 1"), 1);

  // Router statistics, stored once per sweep: every routed expert of the 3 MoE layers (the
  // deepseek form has no shared gate); each valid token goes to top-2 experts, so every layer
  // counts the same tokens; both runs measured the same.
  for (const std::string& path : {db1, db3}) {
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM router_stats WHERE expert >= 0"), 3 * 6);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM router_stats WHERE expert < 0"), 0);
    EXPECT_EQ(count_rows(path, "SELECT count(DISTINCT total) FROM (SELECT sum(tokens) AS total FROM router_stats "
                               "GROUP BY layer)"), 1);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM router_stats WHERE average_weight <= 0 OR average_weight > 1 "
                               "OR tokens <> CAST(tokens AS INTEGER)"), 0);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM events WHERE kind = 'router_stats'"), 1);
  }
  // Each worker says where it computes (provenance of its timings): the in-process worker alone,
  // or ranks 1 and 2; the CPU with its threads where no CUDA device is visible (as here).
  std::string expected_kind = model::visible_cuda_devices() > 0 ? "cuda" : "cpu";
  std::string ready = "SELECT count(*) FROM events WHERE kind = 'worker_ready' AND json_extract(detail, '$.threads') >= 1 "
                      "AND substr(json_extract(detail, '$.device'), 1, " + std::to_string(expected_kind.size()) +
                      ") = '" + expected_kind + "'";
  EXPECT_EQ(count_rows(db1, ready + " AND rank = 0"), 1);  // as its candidates' worker_rank
  EXPECT_EQ(count_rows(db3, ready + " AND rank IN (1, 2)"), 2);
  EXPECT_EQ(count_rows(db3, "SELECT count(*) FROM events WHERE kind = 'worker_ready'"), 2);
  EXPECT_EQ(count_rows(db3, "SELECT sum(tokens) % 2 FROM router_stats"), 0);
  EXPECT_EQ(count_rows(db1, "SELECT sum(tokens) FROM router_stats"), count_rows(db3, "SELECT sum(tokens) FROM router_stats"));
  EXPECT_EQ(count_rows(db1, "SELECT CAST(sum(average_weight * tokens) * 1e6 AS INTEGER) FROM router_stats"),
            count_rows(db3, "SELECT CAST(sum(average_weight * tokens) * 1e6 AS INTEGER) FROM router_stats"));
}

TEST_F(SweepCli, SignalsPreemptCommitAndTheSameCommandResumes) {
  std::string reference_db = file("signal_ref.db");
  ASSERT_EQ(run_command(mpi(3, sweep_args(reference_db, "s"))).exit_code, 0);
  SweepOutcome reference = read_outcome(reference_db, "s");

  struct Case {
    int signal;
    bool under_mpirun;
  };
  // SIGTERM and SIGINT to a one-rank job (as Slurm signals every task); SIGUSR2 to mpirun,
  // which forwards it to its ranks.
  for (Case c : {Case{SIGTERM, false}, Case{SIGINT, false}, Case{SIGUSR2, true}}) {
    SCOPED_TRACE(strsignal(c.signal));
    std::string db = file("signal_" + std::to_string(c.signal) + ".db");
    auto args = interruptible_sweep_args(db, "s");
    BackgroundCommand job(c.under_mpirun ? mpi(3, args) : local(args));
    ASSERT_TRUE(wait_for_done(db, 10, [&] { return kill(job.pid(), 0) == 0; })) << "the sweep reached no 10 DONE candidates while running";
    auto sent = std::chrono::steady_clock::now();
    job.signal_leader(c.signal);
    CommandResult stopped = job.wait();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
    EXPECT_EQ(stopped.exit_code, 75) << stopped.err;
    EXPECT_LT(seconds, 10.0);
    EXPECT_NE(stopped.err.find("preempted by signal"), std::string::npos) << stopped.err;
    SweepOutcome partial = read_outcome(db, "s");
    EXPECT_EQ(partial.state, "PREEMPTED");
    EXPECT_EQ(partial.running, 0);
    EXPECT_LT(partial.done.size(), reference.done.size());
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM events WHERE kind = 'preempted'"),
              count_rows(db, "SELECT count(*) FROM candidates WHERE state = 'PREEMPTED'"));

    CommandResult resumed = run_command(c.under_mpirun ? mpi(3, args) : local(args));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("resuming sweep"), std::string::npos);
    SweepOutcome finished = read_outcome(db, "s");
    EXPECT_EQ(finished.state, "DONE");
    expect_same_outcome(reference, finished, 1e-6);
    EXPECT_EQ(finished.done_events_max, 1);
  }
}

TEST_F(SweepCli, KilledAtRandomPointsResumesToExactlyTheUninterruptedResult) {
  std::string reference_db = file("kill_ref.db");
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run_command(mpi(3, sweep_args(reference_db, "s"))).exit_code, 0);
  double full_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SweepOutcome reference = read_outcome(reference_db, "s");

  std::string db = file("killed.db");
  auto args = sweep_args(db, "s");
  args.insert(args.end(), {"--max-attempts", "10"});  // kills are not the candidates' fault
  std::random_device entropy;
  unsigned seed = entropy();
  std::mt19937 random(seed);
  // Kill points within the first 60% of an uninterrupted run's time: a run on a less loaded
  // machine than the reference's can be a good deal faster, and a run that ends before its
  // kill interrupts nothing.
  std::uniform_real_distribution<double> when(0.3, std::max(0.6, 0.6 * full_s));
  int kills = 0;
  for (int round = 0; round < 4; ++round) {
    double delay = when(random);
    BackgroundCommand job(mpi(3, args));
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    job.signal_group(SIGKILL);
    CommandResult r = job.wait();
    testing::wait_for_lease_holder_to_exit(db);
    kills += r.exit_code == 128 + SIGKILL;
    SCOPED_TRACE("seed " + std::to_string(seed) + ", kill after " + std::to_string(delay) + " s");
    if (r.exit_code == 0) break;  // it finished before the kill
  }
  EXPECT_GE(kills, 1) << "no run was interrupted (seed " << seed << ")";
  CommandResult last = run_command(mpi(3, args));
  ASSERT_EQ(last.exit_code, 0) << last.err;
  SweepOutcome resumed = read_outcome(db, "s");
  EXPECT_EQ(resumed.state, "DONE");
  expect_same_outcome(reference, resumed, 1e-6);
  EXPECT_EQ(resumed.done_events_max, 1) << "a candidate was DONE twice (seed " << seed << ")";
}

TEST_F(SweepCli, BadInputIsOneLineExitTwoAndWritesNothing) {
  std::string db = file("bad.db");
  auto refused = [&](std::vector<std::string> args, const std::string& text) {
    CommandResult r = run_command(local(args));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("cdmoe-sweep: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(db)) << "the database was written";
  };
  auto with = [&](const std::string& option, const std::string& value) {
    auto args = sweep_args(db, "s");
    bool replaced = false;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == option) {
        args[i + 1] = value;
        replaced = true;
      }
    }
    if (!replaced) args.insert(args.end(), {option, value});
    return args;
  };
  write_file(file("empty.txt"), "");
  refused(with("--model", file("nowhere")), "nowhere");
  refused(with("--calib", file("missing.txt")), "missing.txt");
  refused(with("--calib", file("empty.txt")), "empty.txt");
  refused(with("--strategy", "annealing"), "unknown strategy \"annealing\"");
  refused(with("--objective", "wasserstein"), "wasserstein");
  refused(with("--tasks", file("nope.jsonl")), "nope.jsonl");
  refused(with("--experts-kept", "0,7"), "--experts-kept 7 is more than the model's 6 routed experts");
  refused(with("--budgets", "memory:0.01"), "cannot be met by cdmoe_s: the smallest it reaches is memory:0.98");
  refused(with("--budgets", "layers:9"), "layers:9");
  refused(with("--device", "tpu"), "--device \"tpu\"");
  refused(with("--dtype", "fp8"), "--dtype \"fp8\"");
  if (model::visible_cuda_devices() == 0) refused(with("--device", "cuda"), "--device cuda: this ");
  refused(with("--seq-len", "100000"), "max_position_embeddings");
  // Names are stored, printed and drawn: not invalid UTF-8 (it broke `cdmoe-report sweeps --json`
  // for the whole database), nor control characters.
  refused(with("--sweep", "caf\xe9"), "--sweep is not valid UTF-8 (byte 3)");
  refused(with("--sweep", "a\x1b[31mred"), "--sweep holds a control character (U+001B");
  refused({"--model", model()}, "--calib is required");

  // Under mpirun too: exit 2, nothing written, and the workers are let go.
  CommandResult r = run_command(mpi(3, with("--strategy", "annealing")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cdmoe-sweep: error: unknown strategy"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));

  // An existing sweep name with another config is refused, naming the difference.
  std::string done_db = file("config.db");
  auto args = sweep_args(done_db, "s");
  args.insert(args.end(), {"--no-full-eval"});
  ASSERT_EQ(run_command(local(args)).exit_code, 0);
  int64_t events = count_rows(done_db, "SELECT count(*) FROM events");
  auto changed = args;
  changed[std::find(changed.begin(), changed.end(), "--calib-samples") - changed.begin() + 1] = "6";
  CommandResult diff = run_command(local(changed));
  EXPECT_EQ(diff.exit_code, 2) << diff.err;
  EXPECT_NE(diff.err.find("calib_samples: stored 8, now 6"), std::string::npos) << diff.err;
  EXPECT_EQ(count_rows(done_db, "SELECT count(*) FROM events"), events);
}

// Every file the model is read with is part of the sweep's identity: after the tokenizer changed
// (tokenizer.json, or BOS/EOS in tokenizer_config.json) the sweep does not resume and mix the
// results of two tokenizers; the refusal names the fingerprint.
TEST_F(SweepCli, ASweepDoesNotResumeAfterItsTokenizerChanged) {
  testing::TempDir dir;
  std::filesystem::copy(model(), dir.file("model"), std::filesystem::copy_options::recursive);
  const std::string db = dir.file("r.db");
  auto args = sweep_args(db, "s");
  *(std::find(args.begin(), args.end(), "--model") + 1) = dir.file("model");
  CommandResult first = run_command(local(args));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const int64_t events = count_rows(db, "SELECT count(*) FROM events");
  const std::string config_path = dir.file("model") + "/tokenizer_config.json";
  Json config = read_json_file(config_path);
  config["add_bos_token"] = false;
  write_file(config_path, config.dump(2));
  CommandResult again = run_command(local(args));
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_EQ(testing::count_lines(again.err), 1) << again.err;
  EXPECT_NE(again.err.find("tokenizer_hash: stored"), std::string::npos) << again.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM events"), events) << "nothing written";
}

TEST_F(SweepCli, MoreRanksThanCandidatesIsFine) {
  // The random baseline has no search candidates: 1 + 2 full evaluations for 3 workers.
  std::string db = file("idle.db");
  auto args = sweep_args(db, "s");
  args[std::find(args.begin(), args.end(), "--experts-kept") - args.begin() + 1] = "2";
  args.insert(args.end(), {"--strategy", "random"});
  CommandResult r = run_command(mpi(4, args));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE state = 'DONE'"), 3);
}

// BlockDrop through the real workers: greedy block selection, full evaluations of whole-block
// plans, and a parameter ratio below LayerDrop's at the same layer count.
TEST_F(SweepCli, BlockDropRemovesWholeBlocks) {
  std::string db = file("blockdrop.db");
  auto args = sweep_args(db, "s");
  args.insert(args.end(), {"--strategy", "drop,blockdrop"});
  CommandResult r = run_command(mpi(2, args));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'blockdrop_select' AND state = 'DONE'"), 2);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'blockdrop_select' AND plan_json NOT LIKE '%drop_block%'"), 0);
  for (const char* budget : {"layers:1", "layers:2"}) {
    std::string ratio = "(SELECT param_ratio FROM results WHERE stage = 'full_eval' AND budget = '" + std::string(budget) + "' AND method = ";
    EXPECT_EQ(count_rows(db, "SELECT " + ratio + "'blockdrop') < " + ratio + "'drop')"), 1)
        << budget << ": a block holds attention and norms besides its MoE";
    EXPECT_EQ(count_rows(db, "SELECT " + ratio + "'blockdrop') > 0.3"), 1) << budget;
  }
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE stage = 'full_eval' AND method = 'blockdrop' AND task_acc_mean IS NOT NULL"), 2);
  // The report's layer-order table shows both greedy orders.
  CommandResult page = run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-report", "--db", db, "html", "--sweep", "s",
                                    "--out", file("blockdrop.html")});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  std::string html = testing::read_file(file("blockdrop.html"));
  EXPECT_NE(html.find("<td>blockdrop_select</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>drop_select</td>"), std::string::npos);
}

// --routing-tokens full: the average routing weights on each calibration document whole (the
// reference's dynamic_weight.json), not on the --seq-len truncation the divergences use. The
// fixture's documents are longer than its 24 tokens, so more tokens are routed, in every layer.
TEST_F(SweepCli, RoutingWeightsOnWholeDocuments) {
  auto routed = [&](const std::string& db, const std::string& layer) {
    return count_rows(db, "SELECT sum(tokens) FROM router_stats WHERE expert >= 0 AND layer = " + layer);
  };
  std::map<std::string, std::string> dbs = {{"calibration", file("routing_calibration.db")}, {"full", file("routing_full.db")}};
  for (const auto& [tokens, db] : dbs) {
    auto args = sweep_args(db, "s");
    args.insert(args.end(), {"--strategy", "random", "--routing-tokens", tokens});
    if (tokens == "full") args.insert(args.end(), {"--divergence-mean", "sequence"});  // the reference's settings together
    CommandResult r = run_command(local(args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE json_extract(config_json, '$.routing_tokens') = '" + tokens + "'"), 1);
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE json_extract(config_json, '$.divergence_mean') = '" +
                                 std::string(tokens == "full" ? "sequence" : "token") + "'"), 1);
  }
  for (const char* layer : {"1", "2", "3"}) {
    EXPECT_EQ(routed(dbs["calibration"], layer), 8 * 24 * 2) << "8 sequences of 24 tokens, top-2";
    EXPECT_GT(routed(dbs["full"], layer), 8 * 24 * 2) << layer;
    EXPECT_EQ(routed(dbs["full"], layer), routed(dbs["full"], "1")) << "every token through every layer";
  }
  auto args = sweep_args(file("routing_bad.db"), "s");
  args.insert(args.end(), {"--routing-tokens", "whole"});
  CommandResult bad = run_command(local(args));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--routing-tokens \"whole\" is not one of calibration, full"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(file("routing_bad.db")));
}

// The reference's artifacts through cdmoe-import-reference into one sweep beside our own search:
// its plans are evaluated under their own method at the same layers:N budgets.
TEST_F(SweepCli, ReferencePlansSitBesideOurs) {
  const std::string import = std::string(CDMOE_BIN_DIR) + "/cdmoe-import-reference";
  write_file(file("order.json"), "[1, 0]");
  write_file(file("experts.json"), R"({"0": [4, 2, 0], "1": [5, 3, 1]})");
  write_file(file("weights.json"), R"({"0-4": [9, 30, 0.3], "0-2": [6, 30, 0.2], "1-5": [12, 30, 0.4], "1-3": [3, 30, 0.1]})");
  std::vector<std::string> base = {import, "--model", model(), "--layer-order", file("order.json"), "--k", "2"};
  CommandResult missing = run_command(base);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--out is required"), std::string::npos) << missing.err;
  std::vector<std::string> no_experts = base;
  no_experts.insert(no_experts.end(), {"--out", file("ref.jsonl")});
  CommandResult refused = run_command(no_experts);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--k 2 needs --experts and --dynamic-weights"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(file("ref.jsonl")));
  std::vector<std::string> good = no_experts;
  good.insert(good.end(), {"--experts", file("experts.json"), "--dynamic-weights", file("weights.json")});
  auto import_refused = [&](std::vector<std::string> args, const std::string& text) {
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(file("ref.jsonl"))) << "nothing written";
  };
  std::vector<std::string> memory_budget = good;
  memory_budget.insert(memory_budget.end(), {"--budgets", "memory:0.5"});
  import_refused(memory_budget, "--budgets: memory:0.5 is not layers:N");
  std::vector<std::string> past_order = good;
  past_order.insert(past_order.end(), {"--budgets", "layers:3"});
  import_refused(past_order, "budget layers:3 is beyond the 2 layers of " + file("order.json"));
  std::vector<std::string> too_many = good;
  *(std::find(too_many.begin(), too_many.end(), "2")) = "7";
  import_refused(too_many, "--k 7 is not between 0 and the model's 6 routed experts");
  std::vector<std::string> markup_method = good;
  markup_method.insert(markup_method.end(), {"--method", "<b>x"});
  import_refused(markup_method, "--method \"<b>x\" must be lower_snake_case");
  CommandResult imported = run_command(good);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("wrote 2 plans (reference_sr_k2, layers 1..2)"), std::string::npos) << imported.out;

  std::string db = file("reference.db");
  auto args = sweep_args(db, "s");
  args[std::find(args.begin(), args.end(), "--experts-kept") - args.begin() + 1] = "2";
  args.insert(args.end(), {"--strategy", "cdmoe,plans", "--plans", file("ref.jsonl")});
  CommandResult r = run_command(mpi(2, args));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* method : {"reference_sr_k2", "cdmoe_sr_k2"}) {
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE stage = 'full_eval' AND state = 'DONE' AND method = '" +
                                 std::string(method) + "' AND budget IN ('layers:1', 'layers:2')"), 2) << method;
  }
  // MoE layer 1 of the order is the model's second MoE layer, with the reference's weights.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE method = 'reference_sr_k2' AND budget = 'layers:1' AND "
                           "json_extract(plan_json, '$.layers') IS NOT NULL AND plan_json LIKE '%\"weights\":[0.1,0.4]%'"), 1);
}

TEST_F(SweepCli, DryRunCountsAndConfigFileGivesTheSameOptions) {
  std::string db = file("dry.db");
  auto args = sweep_args(db, "s");
  args.push_back("--dry-run");
  CommandResult dry = run_command(local(args));
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("expert_select: 33 candidates"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("candidates: 43 search"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("TFLOP"), std::string::npos) << dry.out;
  EXPECT_FALSE(std::filesystem::exists(db));

  std::string config;
  for (size_t i = 0; i + 1 < args.size(); i += 2) config += args[i].substr(2) + " = " + args[i + 1] + "\n";
  write_file(file("sweep.ini"), config);
  CommandResult from_file = run_command({kSweep, "--config", file("sweep.ini"), "--dry-run"});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, dry.out);

  // Without --experts-kept: CD-MoE-S and the reference's k for the family (deepseek: 6, which
  // this model's 6 routed experts allow), in the stored config as numbers.
  std::vector<std::string> by_family = args;
  by_family.erase(std::find(by_family.begin(), by_family.end(), "--experts-kept"), std::find(by_family.begin(), by_family.end(), "--experts-kept") + 2);
  CommandResult family_default = run_command(local(by_family));
  ASSERT_EQ(family_default.exit_code, 0) << family_default.err;
  EXPECT_NE(family_default.out.find("layer_select_k0:"), std::string::npos) << family_default.out;
  EXPECT_NE(family_default.out.find("layer_select_k6:"), std::string::npos) << family_default.out;
  EXPECT_EQ(family_default.out.find("layer_select_k2:"), std::string::npos) << family_default.out;

  CommandResult help = run_command({kSweep, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option : {"--experts-kept", "--budgets", "--objective", "--max-attempts", "--dry-run", "--config"}) {
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
  }

  // A switch in a config file means what its value says ("no-full-eval = false" turned the full
  // evaluation off); a value that is not true or false, and a config naming another, are refused.
  auto with_config_line = [&](const std::string& line) {
    write_file(file("switch.ini"), config + line + "\n");
    return run_command({kSweep, "--config", file("switch.ini"), "--dry-run"});
  };
  CommandResult off = with_config_line("no-full-eval = false");
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_NE(off.out.find("full evaluations"), std::string::npos) << "false kept the full evaluation: " << off.out;
  CommandResult on = with_config_line("no-full-eval = true");
  ASSERT_EQ(on.exit_code, 0) << on.err;
  EXPECT_EQ(on.out.find("full evaluations"), std::string::npos) << on.out;
  for (const auto& [line, says] : {std::pair{std::string("no-full-eval = maybe"), std::string("no-full-eval is a switch: true or false, got \"maybe\"")},
                                   std::pair{std::string("config = other.ini"), std::string("a --config file cannot name another one")}}) {
    CommandResult refused = with_config_line(line);
    EXPECT_EQ(refused.exit_code, 2) << line;
    EXPECT_EQ(testing::count_lines(refused.err), 1) << refused.err;
    EXPECT_NE(refused.err.find(file("switch.ini") + ":"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(says), std::string::npos) << refused.err;
  }
}

}  // namespace
}  // namespace cdmoe
