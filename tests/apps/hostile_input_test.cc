// cdmoe-sweep fed what a red team fed it: every objective at both scopes, two coordinators on
// one sweep, config.json and weights that disagree, a 5 MB calibration line, numbers and names
// that look valid but are not. Each case checks the outcome: a finished sweep, or one line,
// exit 2 and nothing written.
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/objectives.h"
#include "db/database.h"
#include "db/sqlite.h"
#include "tests/apps/sweep_fixture.h"

namespace cdmoe {
namespace {

using testing::BackgroundCommand;
using testing::CommandResult;
using testing::SweepCli;
using testing::count_rows;
using testing::run_command;
using testing::wait_for_done;
using testing::write_file;
namespace fs = std::filesystem;

std::vector<std::string> with(std::vector<std::string> args, const std::string& option, const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == option) {
      args[i + 1] = value;
      return args;
    }
  }
  args.insert(args.end(), {option, value});
  return args;
}

void expect_refused(const std::vector<std::string>& argv, const std::string& db, const std::string& text) {
  CommandResult r = run_command(argv);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("cdmoe-sweep: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(text), std::string::npos) << "expected \"" << text << "\" in: " << r.err;
  EXPECT_FALSE(fs::exists(db)) << "the database was written";
}

// A copy of the suite's model whose config.json `edit` changes.
std::string edited_model(const std::string& from, const std::string& to, const std::function<void(Json&)>& edit) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
  Json config = read_json_file(to + "/config.json");
  edit(config);
  std::ofstream(to + "/config.json") << config.dump(2);
  return to;
}

TEST_F(SweepCli, EveryObjectiveCompletesASweepAtBothScopes) {
  for (const DivergenceInfo& divergence : divergences()) {
    SCOPED_TRACE(divergence.name);
    std::string db = file(std::string("objective_") + divergence.metric_stem + ".db");
    // Expert selection measures it at layer scope, layer selection at model scope, and the full
    // evaluation of each budget point at model scope again: one metric name, one unit.
    auto args = with(with(sweep_args(db, "s"), "--objective", divergence.name), "--expert-objective", divergence.name);
    args = with(args, "--budgets", "layers:1");
    CommandResult r = run_command(local(args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* scope : kObjectiveScopes) {
      std::string metric = divergence_metric_name(divergence, scope);
      db::Connection c = db::open_database(db, db::OpenMode::kReadOnly);
      db::Statement unit(c, "SELECT unit FROM metric_names WHERE name = ?");
      unit.bind(1, metric);
      ASSERT_TRUE(unit.step()) << metric << " was never recorded";
      EXPECT_EQ(unit.column_text(0), divergence.unit) << metric;
    }
    EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE state <> 'DONE'"), 0);
    std::string model_metric = divergence_metric_name(divergence, "model");
    EXPECT_GT(count_rows(db, "SELECT count(*) FROM metrics m JOIN candidates c ON c.id = m.candidate_id "
                             "WHERE c.stage = 'full_eval' AND m.name = '" + model_metric + "'"),
              0) << "the full evaluations record the sweep's objective";
  }
}

TEST_F(SweepCli, ASecondCoordinatorOnARunningSweepIsRefusedAndChangesNothing) {
  // A model large enough that its sweep is still running when the second process starts.
  std::string big = file("big_model");
  CommandResult synth = run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-synth", "--out", big, "--tokenizer",
                                     std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2/tokenizer.json",
                                     "--hidden", "256", "--layers", "6", "--experts", "16", "--top-k", "4",
                                     "--expert-inner", "128", "--seed", "5"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  std::string db = file("owner.db");
  auto args = with(with(interruptible_sweep_args(db, "s"), "--model", big), "--experts-kept", "0,4");
  args = with(args, "--budgets", "layers:1-5");
  BackgroundCommand owner(mpi(2, args));
  ASSERT_TRUE(wait_for_done(db, 3, [&] { return kill(owner.pid(), 0) == 0; })) << "the first sweep reached no 3 DONE candidates while running";
  ASSERT_EQ(kill(owner.pid(), 0), 0) << "the first sweep ended before the second could start";
  int64_t events = count_rows(db, "SELECT count(*) FROM events WHERE kind IN ('interrupted', 'preempted', 'sweep_end')");

  CommandResult second = run_command(local(args));
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_EQ(testing::count_lines(second.err), 1) << second.err;
  EXPECT_NE(second.err.find("sweep \"s\" is being run by another cdmoe-sweep (host "), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("nothing was changed"), std::string::npos) << second.err;
  ASSERT_EQ(kill(owner.pid(), 0), 0) << "the first sweep must still be running for this test to mean anything";
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE state = 'RUNNING'"), 1) << "not marked FAILED";
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM events WHERE kind IN ('interrupted', 'preempted', 'sweep_end')"), events)
      << "the newcomer requeued nothing";

  // The owner is stopped (it would finish too; a stop is quicker) and its lease is released.
  owner.signal_leader(SIGUSR2);
  CommandResult stopped = owner.wait();
  EXPECT_EQ(stopped.exit_code, 75) << stopped.err;
  EXPECT_EQ(count_rows(db, "SELECT max(attempts) FROM candidates"), 1) << "no candidate ran twice";
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweep_leases"), 0);
}

// Two sweeps of different names on one database at once: each has its own lease, the writers
// take turns on SQLite's lock, and both finish with everything recorded.
TEST_F(SweepCli, TwoSweepsOfDifferentNamesShareADatabase) {
  std::string db = file("shared.db");
  BackgroundCommand a(mpi(2, sweep_args(db, "a")));
  CommandResult b = run_command(local(sweep_args(db, "b")));
  CommandResult first = a.wait();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE state = 'DONE'"), 2);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE state <> 'DONE'"), 0);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates c JOIN sweeps w ON w.id = c.sweep_id WHERE w.name = 'a'"),
            count_rows(db, "SELECT count(*) FROM candidates c JOIN sweeps w ON w.id = c.sweep_id WHERE w.name = 'b'"))
      << "the same config gives the same candidates";
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweep_leases"), 0) << "both released";
}

TEST_F(SweepCli, ConfigAndWeightsThatDisagreeAreRefusedBeforeTheDatabase) {
  std::string db = file("disagree.db");
  auto refused_model = [&](const std::function<void(Json&)>& edit, const std::string& text) {
    std::string dir = edited_model(model(), file("edited_model"), edit);
    expect_refused(local(with(sweep_args(db, "s"), "--model", dir)), db, text);
  };
  refused_model([](Json& c) { c["n_routed_experts"] = int64_t(1) << 40; }, "field 'n_routed_experts' is 1099511627776, past any real model");
  refused_model([](Json& c) { c["n_routed_experts"] = int64_t(1) << 20; }, "config.json implies at least");
  refused_model([](Json& c) { c["hidden_size"] = int64_t(1) << 40; }, "field 'hidden_size'");
  refused_model([](Json& c) { c["moe_intermediate_size"] = 17; }, "experts.0.gate_proj.weight' has shape [16, 32], config.json implies [17, 32]");
  refused_model([](Json& c) { c["n_routed_experts"] = 5; }, "tensor 'model.layers.1.mlp.gate.weight' has shape [6, 32], config.json implies [5, 32]");
  refused_model([](Json& c) { c["attention_bias"] = true; }, "missing tensor 'model.layers.0.self_attn.q_proj.bias'");
  refused_model([](Json& c) { c["n_shared_experts"] = 0; }, "unexpected tensor 'model.layers.1.mlp.shared_experts.");
  refused_model([](Json& c) { c["vocab_size"] = c["vocab_size"].get<int64_t>() + 1; }, "tensor 'model.embed_tokens.weight' has shape");
  refused_model([](Json& c) { c["num_hidden_layers"] = "four"; }, "field 'num_hidden_layers' must be an integer");

  // Another model's tokenizer: ids past the vocabulary would be found by a worker mid-sweep.
  std::string dir = edited_model(model(), file("qwen_tokenizer_model"), [](Json&) {});
  fs::copy_file(std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/qwen3/tokenizer.json", dir + "/tokenizer.json",
                fs::copy_options::overwrite_existing);
  expect_refused(local(with(sweep_args(db, "s"), "--model", dir)), db, "past the model's vocab_size 32000");

  // A tokenizer.json whose values have the wrong type: the file and the JSON path.
  std::string broken = edited_model(model(), file("broken_tokenizer_model"), [](Json&) {});
  Json tokenizer = read_json_file(broken + "/tokenizer.json");
  tokenizer["model"]["merges"][0] = Json::array({1, 2});
  std::ofstream(broken + "/tokenizer.json") << tokenizer.dump();
  expect_refused(local(with(sweep_args(db, "s"), "--model", broken)), db, "tokenizer.json: at /model/merges/0/0: type must be string");
  tokenizer = read_json_file(model() + "/tokenizer.json");
  tokenizer["model"]["vocab"]["<unk>"] = "zero";
  std::ofstream(broken + "/tokenizer.json") << tokenizer.dump();
  expect_refused(local(with(sweep_args(db, "s"), "--model", broken)), db, "model.vocab.<unk> must be a token id");
}

TEST_F(SweepCli, NumbersAndNamesThatLookValidButAreNot) {
  std::string db = file("numbers.db");
  auto refused = [&](const std::string& option, const std::string& value, const std::string& text) {
    expect_refused(local(with(sweep_args(db, "s"), option, value)), db, text);
  };
  refused("--calib-samples", "-3", "--calib-samples must be at least 1, got -3");
  refused("--speed-repeats", "0", "--speed-repeats must be at least 1");
  refused("--speed-ci", "-0.02", "--speed-ci must be positive");
  refused("--speed-max-s", "-1", "--speed-max-s must be 0 or positive");
  refused("--speed-workload", "decode", "--speed-workload \"decode\" is not one of calibration, prefill-2000");
  refused("--task-limit", "-1", "--task-limit must be 0 (all items) or positive, got -1");
  refused("--budgets", "memory:1.5", "memory:1.5 is neither a fraction in (0, 1] nor a size in bytes");
  refused("--budgets", "memory:900", "memory:900 is neither");
  refused("--sweep", "", "--sweep must not be empty");
  refused("--sweep", "two\nlines", "--sweep holds a control character (U+000A");
  refused("--sweep", " padded", "starts or ends with a space");
  refused("--divergence-mean", "document", "--divergence-mean: \"document\" is not one of token, sequence");
  refused("--routing-tokens", "whole", "--routing-tokens \"whole\" is not one of calibration, full");
  refused("--task-average", "hellaswag=acc_norm", "--task-average: task hellaswag is not among --tasks");
  // --experts-kept auto is the family's reference k (deepseek: 6), more than a 4-expert model has.
  std::string four = file("four_experts");
  CommandResult synth = run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-synth", "--out", four, "--tokenizer",
                                     std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2/tokenizer.json",
                                     "--hidden", "32", "--layers", "2", "--experts", "4", "--top-k", "2", "--expert-inner", "16"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  expect_refused(local(with(with(sweep_args(db, "s"), "--model", four), "--experts-kept", "auto")), db,
                 "--experts-kept auto (6) is more than the model's 4 routed experts");

  auto plans = [&](const std::string& text, const std::string& error) {
    write_file(file("plans.jsonl"), text);
    auto args = with(with(sweep_args(db, "s"), "--strategy", "plans"), "--plans", file("plans.jsonl"));
    expect_refused(local(args), db, error);
  };
  plans("{\"name\": \"a\", \"plan\": {\"layers\": {\"1\": {\"op\": \"drop\"}}}}\n"
        "{\"name\": \"a\", \"plan\": {\"layers\": {\"2\": {\"op\": \"drop\"}}}}\n",
        "plans.jsonl:2: plan name \"a\" is used again (first on line 1)");
  plans("{\"name\": \"a\", \"plan\": {\"layers\": {\"1\": {\"op\": \"drop\"}}}}\n"
        "{\"name\": \"b\", \"plan\": {\"layers\": {\"1\": {\"op\": \"drop\"}}}}\n",
        "plans.jsonl:2: plan \"b\" is the same plan as \"a\" on line 1");
  plans("{\"name\": \"x\", \"plan\": {\"layers\": {\"1\": {\"op\": \"condense\", \"experts\": [0, 1], \"weights\": [1e308, -1e308]}}}}\n",
        "weights[0] is 1e+308; condense weights must lie within [-1000, 1000]");

  write_file(file("empty_choice.jsonl"), "{\"context\": \"The sky is\", \"choices\": [\"blue\", \"\"], \"gold\": 0}\n");
  refused("--tasks", file("empty_choice.jsonl"), "empty_choice.jsonl:1: choice 1 is empty");
}

// SIGTERM to mpirun itself (not to the ranks, as Slurm does) makes mpirun end the job with an
// exit code of its own choosing, not the sweep's 75. What a wrapper checks instead is the
// documented one: the sweep's state in the database, PREEMPTED, and the same command resumes.
TEST_F(SweepCli, SigtermToMpirunLeavesAPreemptedSweepThatTheSameCommandResumes) {
  std::string db = file("mpirun_term.db");
  auto args = interruptible_sweep_args(db, "s");
  BackgroundCommand job(mpi(3, args));
  ASSERT_TRUE(wait_for_done(db, 10, [&] { return kill(job.pid(), 0) == 0; })) << "the sweep reached no 10 DONE candidates while running";
  job.signal_leader(SIGTERM);
  CommandResult stopped = job.wait();
  EXPECT_NE(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE name = 's' AND state = 'PREEMPTED'"), 1)
      << "exit " << stopped.exit_code << ": " << stopped.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE state = 'RUNNING'"), 0);
  CommandResult resumed = run_command(mpi(3, args));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM sweeps WHERE name = 's' AND state = 'DONE'"), 1);
}

TEST_F(SweepCli, AFiveMegabyteCalibrationLineIsReadQuickly) {
  // One 5 MB word: the whole of it through BPE was quadratic (hours); only its leading part is
  // tokenised now, by a merge loop that is O(n log n) either way.
  std::string calib = std::string(5 << 20, 'a') + "\n";
  for (int i = 0; i < 8; ++i) calib += "Document " + std::to_string(i) + ": a short line of calibration text.\n";
  write_file(file("long_line.txt"), calib);
  std::string db = file("long.db");
  auto args = with(with(sweep_args(db, "s"), "--calib", file("long_line.txt")), "--budgets", "layers:1");
  args = with(args, "--calib-samples", "9");  // every document, the long one included
  args.push_back("--dry-run");
  CommandResult r = run_command(local(args));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("candidates"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace cdmoe
