// End-to-end: cdmoe-train on the sweep suites' tiny checkpoint. Two MPI ranks with batch b end
// where one rank with batch 2b does; a run SIGKILLed at random points and re-run ends with the
// bytes of an uninterrupted run; SIGTERM checkpoints and exits 75; bad input is one line, exit
// 2, nothing written; the result loads in cdmoe-eval; --db records a child candidate with its
// loss curve.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/host_name.h"
#include "core/json_fields.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "db/database.h"
#include "db/sqlite.h"
#include "tests/apps/sweep_fixture.h"

namespace cdmoe::testing {
namespace {

namespace fs = std::filesystem;

const std::string kTrain = std::string(CDMOE_BIN_DIR) + "/cdmoe-train";
const std::string kEval = std::string(CDMOE_BIN_DIR) + "/cdmoe-eval";
const std::string kExport = std::string(CDMOE_BIN_DIR) + "/cdmoe-export";

// The first column of the first row of `sql` as text.
std::string read_text(const std::string& db_path, const std::string& sql) {
  db::Connection c = db::open_database(db_path, db::OpenMode::kReadOnly);
  db::Statement s(c, sql);
  return s.step() ? s.column_text(0) : std::string();
}

class TrainCli : public SweepCli {
 protected:
  static void SetUpTestSuite() {
    SweepCli::SetUpTestSuite();
    write_file(file("plan.json"),
               R"({"layers": {"2": {"op": "condense", "experts": [1, 4], "weights": [0.4, 0.3]},
                              "3": {"op": "condense", "experts": [0], "weights": [0.5]}}})");
  }

  // A short run: --steps N of 4 sequences of 16 tokens (per rank: `batch`).
  static std::vector<std::string> args(const std::string& out, int steps, int batch = 4) {
    return {"--model", model(), "--plan", file("plan.json"), "--data", file("calib.txt"), "--out", out,
            "--steps", std::to_string(steps), "--batch-size", std::to_string(batch), "--seq-len", "16",
            "--lr", "3e-3", "--warmup", "2", "--threads", "1", "--seed", "5"};
  }
  static std::vector<std::string> finetune_args(int steps) {
    return {"--finetune-data", file("calib.txt"), "--finetune-steps", std::to_string(steps), "--finetune-batch-size", "2",
            "--finetune-seq-len", "16", "--finetune-lr", "1e-3", "--finetune-checkpoint-every", "1"};
  }
  static std::vector<std::string> train(std::vector<std::string> a) {
    a.insert(a.begin(), kTrain);
    return a;
  }
  // Runs the suite's sweep into `db` and returns its most condensed budget point (0 on failure).
  static int64_t swept_point(const std::string& db);
};

std::map<std::string, at::Tensor> weights_of(const std::string& dir) {
  model::SafetensorsFile file(dir + "/model.safetensors");
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, info] : file.header().tensors) {
    out[name] = at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat).clone();
  }
  return out;
}

std::vector<Json> log_lines(const std::string& dir) {
  std::vector<Json> out;
  std::string text = read_file(dir + "/train_log.jsonl");
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    out.push_back(Json::parse(text.substr(at, end - at)));
    at = end + 1;
  }
  return out;
}

// The sweep's own fine-tunes' loss curves in a database: (method, plan hash, step, loss), ordered.
std::vector<std::tuple<std::string, std::string, int64_t, double>> loss_curves(const std::string& path) {
  db::Connection c = db::open_database(path, db::OpenMode::kReadOnly);
  db::Statement rows(c, "SELECT c.method, c.plan_hash, f.step, f.loss FROM finetune_steps f "
                        "JOIN candidates c ON c.id = f.candidate_id WHERE c.stage = 'finetune' ORDER BY 1, 2, 3");
  std::vector<std::tuple<std::string, std::string, int64_t, double>> out;
  while (rows.step()) out.emplace_back(rows.column_text(0), rows.column_text(1), rows.column_int(2), rows.column_double(3));
  return out;
}

double metric(const std::string& json_text, const std::string& name) {
  Json report = Json::parse(json_text);
  for (const Json& m : report["metrics"]) {
    if (m["name"] == name) return m["value"].get<double>();
  }
  ADD_FAILURE() << "no metric " << name << " in " << json_text;
  return NAN;
}

TEST_F(TrainCli, TwoRanksWithBatchBEndWhereOneRankWithBatchTwoBDoes) {
  TempDir dir;
  CommandResult one = run_command(train(args(dir.file("one"), 4, 4)));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  std::vector<std::string> two = {kMpirun, "--oversubscribe", "-np", "2", kTrain};
  for (const std::string& a : args(dir.file("two"), 4, 2)) two.push_back(a);
  CommandResult r = run_command(two);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a = weights_of(dir.file("one")), b = weights_of(dir.file("two"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    EXPECT_LT((tensor - b.at(name)).abs().max().item<double>(), 1e-6) << name;
  }
  std::vector<Json> la = log_lines(dir.file("one")), lb = log_lines(dir.file("two"));
  ASSERT_EQ(la.size(), 4u);
  ASSERT_EQ(lb.size(), 4u);
  for (size_t i = 0; i < la.size(); ++i) {
    // float32 sums in another order: equal to a relative 1e-6
    EXPECT_NEAR(la[i]["loss"].get<double>(), lb[i]["loss"].get<double>(), 1e-6 * la[i]["loss"].get<double>()) << "step " << i;
    EXPECT_EQ(la[i]["tokens"], lb[i]["tokens"]) << "step " << i;
  }
}

// Ranks of one job started with other options train what no single run gives (other data) or
// wait on each other for ever (other step counts): every rank's run is compared with rank 0's
// before anything is written, and the job fails naming what differs.
TEST_F(TrainCli, RanksStartedWithDifferentRunsFailTogetherNamingTheDifference) {
  TempDir dir;
  write_file(dir.file("other.txt"), read_file(file("calib.txt")) + "One more line that makes this another file.\n");
  std::vector<std::string> other_data = args(dir.file("run"), 4, 2);
  *(std::find(other_data.begin(), other_data.end(), "--data") + 1) = dir.file("other.txt");
  std::vector<std::string> other_steps = args(dir.file("run"), 5, 2);
  for (const auto& [second, says] : {std::pair{other_data, std::string("their data differs")},
                                     std::pair{other_steps, std::string("their lm_steps differs")}}) {
    std::vector<std::string> command = {kMpirun, "--oversubscribe", "-np", "1", kTrain};
    for (const std::string& a : args(dir.file("run"), 4, 2)) command.push_back(a);
    command.insert(command.end(), {":", "-np", "1", kTrain});
    command.insert(command.end(), second.begin(), second.end());
    CommandResult r = run_command(command);
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("the ranks of this job were started with different runs: " + says), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir.file("run"))) << "nothing written";
  }
}

TEST_F(TrainCli, TrainsOnlyTheCondensedLayersAndTheResultLoadsInCdmoeEval) {
  TempDir dir;
  std::vector<std::string> a = args(dir.file("out"), 6);
  a.insert(a.end(), {"--eval-data", file("calib.txt"), "--eval-every", "3"});
  CommandResult r = run_command(train(a));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto source = model::MoeModel::load(model());
  Plan plan = Plan::read_file(file("plan.json"));
  auto trained = weights_of(dir.file("out"));
  for (const auto& [name, tensor] : source->materialise(plan)) {
    bool condensed = name.rfind("model.layers.2.mlp.", 0) == 0 || name.rfind("model.layers.3.mlp.", 0) == 0;
    if (condensed) {
      EXPECT_GT((trained.at(name) - tensor).abs().max().item<double>(), 1e-4) << name << " did not train";
    } else {
      EXPECT_TRUE(at::equal(trained.at(name), tensor)) << name << " changed";
    }
  }
  // 6 step lines and held-out evaluations after steps 3 and 6.
  std::vector<Json> lines = log_lines(dir.file("out"));
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[3]["step"], 3);
  EXPECT_TRUE(lines[3].contains("eval_loss"));
  EXPECT_TRUE(lines[7].contains("eval_ppl"));
  // cdmoe-eval loads the directory on its own; fine-tuning on this text lowered its perplexity
  // below the untrained condensed model's.
  CommandResult after = run_command({kEval, "--model", dir.file("out"), "--ppl", file("calib.txt"), "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  CommandResult before = run_command({kEval, "--model", model(), "--plan", file("plan.json"), "--ppl", file("calib.txt"), "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_LT(metric(after.out, "perplexity"), metric(before.out, "perplexity"));
  // A second run of the same command finds the finished run and does nothing.
  CommandResult again = run_command(train(a));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("finished run already"), std::string::npos) << again.err;
}

TEST_F(TrainCli, EpochsThenSftAndTheOtherTrainModes) {
  TempDir dir;
  std::string sft;
  for (int i = 0; i < 6; ++i) sft += "{\"prompt\": \"Question " + std::to_string(i) + ": is the router gone?\", \"response\": \" Yes.\"}\n";
  write_file(dir.file("sft.jsonl"), sft);
  std::vector<std::string> a = args(dir.file("phases"), 1);
  auto steps = std::find(a.begin(), a.end(), "--steps");
  *steps = "--epochs";
  *(steps + 1) = "1";
  a.insert(a.end(), {"--sft", dir.file("sft.jsonl")});
  CommandResult r = run_command(train(a));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json run = read_json_file(dir.file("phases") + "/train_run.json");
  // One epoch of the packed text, then one of the 6 SFT rows, 4 rows a step.
  EXPECT_GE(run["lm_steps"].get<int64_t>(), 1);
  EXPECT_EQ(run["sft_steps"], 2);
  std::vector<Json> lines = log_lines(dir.file("phases"));
  ASSERT_EQ(int64_t(lines.size()), run["lm_steps"].get<int64_t>() + 2);
  // An SFT step trains on the responses only: " Yes." and the end of sequence, 4 rows.
  EXPECT_LT(lines.back()["tokens"].get<int64_t>(), lines.front()["tokens"].get<int64_t>());

  // --train all: every parameter, from no plan; the result loads with the same tensor names.
  std::vector<std::string> all = {kTrain, "--model", model(), "--train", "all", "--data", file("calib.txt"), "--out",
                                  dir.file("all"), "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--lr", "1e-3", "--threads", "1"};
  CommandResult ra = run_command(all);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  auto source = model::MoeModel::load(model());
  auto trained = weights_of(dir.file("all"));
  size_t changed = 0;
  for (const auto& [name, tensor] : source->materialise(Plan())) changed += !at::equal(trained.at(name), tensor);
  EXPECT_EQ(changed, trained.size());
  EXPECT_GT(log_lines(dir.file("all"))[0]["balance_loss"].get<double>(), 0.0);

  // --train blocks: only the MoE blocks of the listed layers.
  std::vector<std::string> blocks = all;
  *(std::find(blocks.begin(), blocks.end(), "all")) = "blocks";
  *(std::find(blocks.begin(), blocks.end(), dir.file("all"))) = dir.file("blocks");
  blocks.insert(blocks.end(), {"--layers", "2"});
  CommandResult rb = run_command(blocks);
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  auto block_weights = weights_of(dir.file("blocks"));
  for (const auto& [name, tensor] : source->materialise(Plan())) {
    bool in_block = name.rfind("model.layers.2.mlp.", 0) == 0;
    EXPECT_EQ(at::equal(block_weights.at(name), tensor), !in_block) << name;
  }
}

TEST_F(TrainCli, KilledAtRandomPointsResumesToTheBytesOfAnUninterruptedRun) {
  TempDir dir;
  const int steps = 10;
  auto with_checkpoints = [&](const std::string& out) {
    std::vector<std::string> a = train(args(out, steps));
    a.insert(a.end(), {"--checkpoint-every", "1"});
    return a;
  };
  const auto started = std::chrono::steady_clock::now();
  CommandResult whole = run_command(with_checkpoints(dir.file("whole")));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  // Kill points are drawn within the uninterrupted run's own duration (10% to 90% of it, halved
  // after a run that finished first), so a fast machine is killed as surely as a slow one.
  double whole_ms = double(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  std::mt19937 rng(2026);
  int kills = 0;
  for (int attempt = 0; attempt < 8 && kills < 3; ++attempt) {
    BackgroundCommand job(with_checkpoints(dir.file("killed")));
    std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(whole_ms * (0.1 + 0.8 * double(rng() % 1000) / 1000.0))));
    job.signal_group(SIGKILL);
    CommandResult r = job.wait();
    if (r.exit_code == 0 && kills > 0) break;  // finished before the kill: the rest is the resume below
    if (r.exit_code == 0) {  // never killed yet: start over, sooner
      std::filesystem::remove_all(dir.file("killed"));
      whole_ms /= 2;
      continue;
    }
    ++kills;
  }
  CommandResult finish = run_command(with_checkpoints(dir.file("killed")));
  ASSERT_EQ(finish.exit_code, 0) << finish.err;
  EXPECT_GE(kills, 1);
  EXPECT_EQ(read_file(dir.file("killed") + "/model.safetensors"), read_file(dir.file("whole") + "/model.safetensors"));
  // The killed runs' half-written checkpoints (.tmp-HOST-PID) went with the next write.
  for (const auto& entry : fs::directory_iterator(dir.file("killed"))) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << "left behind: " << entry.path();
  }
  // The log holds each step once, with the uninterrupted run's losses.
  std::vector<Json> killed = log_lines(dir.file("killed")), uninterrupted = log_lines(dir.file("whole"));
  ASSERT_EQ(killed.size(), size_t(steps));
  for (int i = 0; i < steps; ++i) {
    EXPECT_EQ(killed[size_t(i)]["step"], i);
    EXPECT_EQ(killed[size_t(i)]["loss"], uninterrupted[size_t(i)]["loss"]) << "step " << i;
  }
}

TEST_F(TrainCli, SigtermCheckpointsAndExits75ThenTheSameCommandFinishes) {
  TempDir dir;
  std::vector<std::string> a = train(args(dir.file("out"), 400));
  a.insert(a.end(), {"--checkpoint-every", "0"});
  BackgroundCommand job(a);
  ASSERT_TRUE(wait_until(120, [&] { return fs::exists(dir.file("out") + "/train_log.jsonl") && !read_file(dir.file("out") + "/train_log.jsonl").empty(); }))
      << "no training step was logged";
  job.signal_leader(SIGTERM);
  CommandResult stopped = job.wait();
  ASSERT_EQ(stopped.exit_code, 75) << stopped.err;
  EXPECT_NE(stopped.err.find("Run the same command to resume"), std::string::npos) << stopped.err;
  EXPECT_TRUE(fs::exists(dir.file("out") + "/trainer_state.safetensors"));
  EXPECT_FALSE(fs::exists(dir.file("out") + "/config.json"));  // not finished
  size_t logged = log_lines(dir.file("out")).size();
  EXPECT_GE(logged, 1u);
  EXPECT_LT(logged, 400u);
}

TEST_F(TrainCli, BadInputIsOneLineExitTwoAndWritesNothing) {
  TempDir dir;
  write_file(dir.file("empty.txt"), "");
  write_file(dir.file("short.txt"), "Too short.\n");
  write_file(dir.file("drop.json"), R"({"layers": {"2": {"op": "drop"}}})");
  const std::string out = dir.file("out");
  auto with = [&](const std::string& option, const std::string& value) {
    std::vector<std::string> a = args(out, 3);
    auto it = std::find(a.begin(), a.end(), option);
    if (it == a.end()) {
      a.insert(a.end(), {option, value});
    } else {
      *(it + 1) = value;
    }
    return train(a);
  };
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  std::vector<Case> cases = {
      {with("--data", dir.file("missing.txt")), "--data"},
      {with("--data", dir.file("empty.txt")), "empty.txt: is empty"},
      {with("--data", dir.file("short.txt")), "fewer than one block"},
      {with("--steps", "0"), "--steps must lie in 1..1000000000, got 0"},
      {with("--steps", "9223372036854775807"), "--steps must lie in 1..1000000000"},
      {with("--lr", "0"), "--lr must be a finite number in (0, 1], got 0"},
      {with("--lr", "-1e-5"), "--lr must be a finite number in (0, 1]"},
      // Non-finite and overflowing numbers: refused before anything runs (--lr inf trained to NaN
      // weights and exited 0).
      {with("--lr", "inf"), "--lr must be a finite number in (0, 1], got inf"},
      {with("--lr", "nan"), "--lr must be a finite number"},
      {with("--lr", "1e300"), "--lr must be a finite number in (0, 1], got 1e+300"},
      {with("--balance-coef", "inf"), "--balance-coef must be a finite number in [0, 100]"},
      {with("--clip", "inf"), "--clip must be a finite number"},
      {with("--lr-floor", "nan"), "--lr-floor must be a finite number in [0, 1]"},
      {with("--sft-epochs", "inf"), "--sft-epochs must be a finite number"},
      // Counts past what a machine holds (they hung, overflowed or were OOM-killed), refused first.
      {with("--threads", "100000"), "--threads 100000 is not 0 (the default) or at most 4 per hardware thread"},
      {with("--batch-size", "4611686018427387904"), "tokens per micro-batch is more than any device holds"},
      {with("--batch-size", "1000000000"), "tokens per micro-batch is more than any device holds"},
      {with("--grad-accum", "4611686018427387904"), "--grad-accum 4611686018427387904 is more than 65536"},
      // Found after the model is read, still before --out exists (the corrected rerun is not
      // refused as "another run").
      {with("--seq-len", "4096"), "--seq-len 4096 exceeds the model's max_position_embeddings"},
      {with("--plan", dir.file("drop.json")), "condenses no layer"},
      {with("--train", "everything"), "--train"},
      {with("--eval-data", dir.file("empty.txt")), "empty.txt"},
  };
  for (const Case& c : cases) {
    CommandResult r = run_command(c.argv);
    EXPECT_EQ(r.exit_code, 2) << c.says << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.says;
  }
  // --epochs inf (instead of --steps), and more passes than any run makes.
  for (const auto& [epochs, says] : {std::pair{std::string("inf"), std::string("--epochs must be a finite number in (0, 1e+06], got inf")},
                                     std::pair{std::string("2e6"), std::string("--epochs must be a finite number in (0, 1e+06], got 2e+06")}}) {
    std::vector<std::string> a = args(out, 3);
    auto steps = std::find(a.begin(), a.end(), "--steps");
    *steps = "--epochs";
    *(steps + 1) = epochs;
    CommandResult r = run_command(train(a));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  // --out that exists and is not a run directory, or is another run's.
  fs::create_directory(dir.file("other"));
  write_file(dir.file("other") + "/notes.txt", "mine");
  CommandResult foreign = run_command(train(args(dir.file("other"), 3)));
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_NE(foreign.err.find("not a cdmoe-train run directory"), std::string::npos) << foreign.err;
  EXPECT_EQ(read_file(dir.file("other") + "/notes.txt"), "mine");
  ASSERT_EQ(run_command(train(args(dir.file("run"), 2))).exit_code, 0);
  std::string before = read_file(dir.file("run") + "/model.safetensors");
  std::vector<std::string> changed = args(dir.file("run"), 2);
  *(std::find(changed.begin(), changed.end(), "--lr") + 1) = "1e-3";
  CommandResult other_run = run_command(train(changed));
  EXPECT_EQ(other_run.exit_code, 2);
  EXPECT_NE(other_run.err.find("belongs to another run: its lr is 0.003, this run's is 0.001"), std::string::npos) << other_run.err;
  EXPECT_EQ(read_file(dir.file("run") + "/model.safetensors"), before);
}

// The other new options: cdmoe-sweep's --finetune-*, cdmoe-train-tokenizer, cdmoe-synth --init,
// cdmoe-train --layers. One line naming the option, exit 2, nothing written.
TEST_F(TrainCli, NewOptionsRefuseBadInputInOneLine) {
  TempDir dir;
  write_file(dir.file("short.txt"), "Too short.\n");
  const std::string db = dir.file("r.db");
  auto sweep_with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = local(sweep_args(db, "s"));
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const std::string data = file("calib.txt");
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  std::vector<Case> cases = {
      {sweep_with({"--finetune-steps", "5"}), "--finetune-steps needs --finetune-data"},
      {sweep_with({"--finetune-data", data}), "--finetune-steps must be positive"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "2", "--finetune-lr", "0"}), "--finetune-lr must be a finite number in (0, 1]"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "2", "--finetune-lr", "inf"}), "--finetune-lr must be a finite number in (0, 1], got inf"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "2", "--finetune-lr", "1e6"}), "--finetune-lr must be a finite number in (0, 1], got 1e+06"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "9223372036854775807"}), "--finetune-steps must lie in 1..1000000000"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "2", "--finetune-batch-size", "1000000000"}),
       "--finetune-batch-size must lie in 1.."},
      {[&] {
         std::vector<std::string> a = sweep_with({});
         *(std::find(a.begin(), a.end(), "--threads") + 1) = "100000";
         return a;
       }(),
       "--threads 100000 is not 0"},
      {sweep_with({"--cache-mb", "9223372036854775807"}), "--cache-mb must lie in 0..16777216"},
      {sweep_with({"--in-flight", "100000000"}), "--in-flight must lie in 1..1024"},
      {sweep_with({"--batch-size", "1000000000"}), "--batch-size must lie in 1.."},
      {{std::string(CDMOE_BIN_DIR) + "/cdmoe-eval", "--model", model(), "--ppl", data, "--threads", "100000"}, "--threads 100000"},
      {{std::string(CDMOE_BIN_DIR) + "/cdmoe-eval", "--model", model(), "--ppl", data, "--cache-mb", "9223372036854775807"},
       "--cache-mb must lie in 0..16777216"},
      {sweep_with({"--finetune-data", data, "--finetune-steps", "2", "--no-full-eval"}), "needs the full evaluation"},
      {sweep_with({"--finetune-data", dir.file("short.txt"), "--finetune-steps", "2", "--finetune-seq-len", "64"}),
       "fewer than one block"},
      {{std::string(CDMOE_BIN_DIR) + "/cdmoe-train-tokenizer", "--data", data, "--out", dir.file("tok"), "--vocab-size", "100"},
       "--vocab-size must lie in"},
      {{std::string(CDMOE_BIN_DIR) + "/cdmoe-train-tokenizer", "--data", dir.file("missing.txt"), "--out", dir.file("tok")},
       "missing.txt"},
      {{std::string(CDMOE_BIN_DIR) + "/cdmoe-synth", "--out", dir.file("synth"), "--init", "xavier"}, "--init"},
      {train({"--model", model(), "--train", "blocks", "--data", data, "--out", dir.file("out"), "--steps", "1"}),
       "--train blocks needs --layers"},
      {train({"--model", model(), "--train", "blocks", "--layers", "2,x", "--data", data, "--out", dir.file("out"), "--steps", "1"}),
       "--layers: \"x\" is not a layer index"},
  };
  for (const Case& c : cases) {
    CommandResult r = run_command(c.argv);
    EXPECT_EQ(r.exit_code, 2) << c.says << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(db));
  EXPECT_FALSE(fs::exists(dir.file("tok") + "/tokenizer.json"));
  EXPECT_FALSE(fs::exists(dir.file("synth")));
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

// The sweep's candidate with the most condensed layers (a budget point's full evaluation).
int64_t most_condensed_point(const std::string& db) {
  return count_rows(db, "SELECT id FROM candidates WHERE stage = 'full_eval' AND plan_json LIKE '%condense%' AND state = 'DONE' "
                        "ORDER BY length(plan_json) DESC, id LIMIT 1");
}

int64_t TrainCli::swept_point(const std::string& db) {
  CommandResult sweep = run_command(local(sweep_args(db, "s")));
  EXPECT_EQ(sweep.exit_code, 0) << sweep.err;
  return sweep.exit_code == 0 ? most_condensed_point(db) : 0;
}

// Writes to the sweep database as a test's own process would: a lease row, or removing it.
void execute(const std::string& db, const std::string& sql) {
  db::Connection c = db::open_database(db, db::OpenMode::kReadWrite);
  c.exec(sql);
}
// A live coordinator on the sweep, as the lease table shows one: this test process, on this host.
void hold_lease(const std::string& db, const std::string& sweep) {
  execute(db, "INSERT INTO sweep_leases (sweep, host, pid, heartbeat) VALUES ('" + sweep + "', '" + host_name() +
                  "', " + std::to_string(getpid()) + ", strftime('%s', 'now'))");
}
void release_lease(const std::string& db) { execute(db, "DELETE FROM sweep_leases"); }

// A fine-tune by hand of a sweep's candidate is a candidate of its own: stage "train", method +
// "_ft", the candidate as parent, its loss curve, and its provenance (identity and directory) in
// train_runs. The same run again is not recorded twice; another run of the same candidate is
// another candidate; a fine-tuned parent, another model and another tokenizer are refused.
TEST_F(TrainCli, DbCandidateIsFineTunedAsACandidateOfItsOwnWithItsProvenance) {
  TempDir dir;
  const std::string db = dir.file("r.db");
  const int64_t parent = swept_point(db);
  ASSERT_GT(parent, 0);
  auto manual = [&](const std::string& out, const std::string& lr, const std::string& model_dir, int64_t candidate) {
    return std::vector<std::string>{kTrain, "--model", model_dir, "--db", db, "--candidate", std::to_string(candidate),
                                    "--data", file("calib.txt"), "--out", out, "--steps", "3",
                                    "--batch-size", "2", "--seq-len", "16", "--lr", lr, "--threads", "1"};
  };
  std::vector<std::string> with_held_out = manual(dir.file("ft"), "1e-3", model(), parent);
  with_held_out.insert(with_held_out.end(), {"--eval-data", file("calib.txt"), "--eval-every", "2"});
  CommandResult r = run_command(with_held_out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("recorded candidate"), std::string::npos) << r.out;
  const std::string parent_is = "parent_id = " + std::to_string(parent);
  const int64_t child = count_rows(db, "SELECT c.id FROM candidates c JOIN candidates p ON p.id = c.parent_id WHERE c." + parent_is +
                                           " AND c.stage = 'train' AND c.state = 'DONE' AND c.method = p.method || '_ft' "
                                           "AND c.plan_hash = p.plan_hash");
  ASSERT_GT(child, 0);
  const std::string of_child = " WHERE candidate_id = " + std::to_string(child);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps" + of_child), 3);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM train_runs" + of_child + " AND out_dir = '" + fs::absolute(dir.file("ft")).string() +
                               "' AND json_extract(identity_json, '$.lr') = 0.001 AND json_extract(identity_json, '$.lm_steps') = 3 "
                               "AND length(json_extract(identity_json, '$.data')) = 64 "
                               "AND length(json_extract(identity_json, '$.tokenizer')) = 64"),
            1);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE candidate_id = " + std::to_string(child) +
                               " AND finetune_tokens > 0 AND finetune_loss > 0"),
            1);
  // Its held-out losses (after steps 2 and 3, the end) are the ones its log shows, on the
  // held-out text's hash; the last is the candidate's finetune_held_out_loss.
  std::map<int64_t, double> logged;
  for (const Json& line : log_lines(dir.file("ft"))) {
    if (line.contains("eval_loss")) logged[line["step"].get<int64_t>()] = line["eval_loss"].get<double>();
  }
  ASSERT_EQ(logged.size(), 2u);
  {
    db::Connection c = db::open_database(db, db::OpenMode::kReadOnly);
    db::Statement held_out(c, "SELECT after_steps, loss, tokens, length(data_hash) FROM finetune_held_out" + of_child +
                                  " ORDER BY after_steps");
    std::map<int64_t, double> recorded;
    while (held_out.step()) {
      recorded[held_out.column_int(0)] = held_out.column_double(1);
      EXPECT_GT(held_out.column_int(2), 0);
      EXPECT_EQ(held_out.column_int(3), 64);
    }
    EXPECT_EQ(recorded, logged);
    db::Statement last(c, "SELECT finetune_held_out_loss FROM results WHERE candidate_id = ?");
    last.bind(1, child);
    ASSERT_TRUE(last.step());
    EXPECT_EQ(last.column_double(0), logged.at(3));
  }
  // The report's loss chart draws them beside the training loss.
  CommandResult page =
      run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-report", "--db", db, "html", "--sweep", "s", "--out", dir.file("r.html")});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_NE(read_file(dir.file("r.html")).find("#" + std::to_string(child) + " (held-out)"), std::string::npos);
  // The same command again: the run is recorded already.
  CommandResult again = run_command(with_held_out);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("recorded already: candidate " + std::to_string(child)), std::string::npos) << again.out;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'train'"), 1);
  // Another run of the same candidate (another learning rate) is another candidate.
  CommandResult other = run_command(manual(dir.file("ft2"), "2e-3", model(), parent));
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'train' AND state = 'DONE' AND " + parent_is), 2);
  EXPECT_EQ(count_rows(db, "SELECT count(DISTINCT identity_hash) FROM train_runs"), 2);
  EXPECT_EQ(count_rows(db, "SELECT count(DISTINCT candidate_id) FROM finetune_held_out"), 1) << "the second run had no held-out text";

  // Refused, exit 2, one line, nothing written: a fine-tuned candidate as the parent (its
  // weights are not what cdmoe-train starts from), another model, another tokenizer.
  fs::copy(model(), dir.file("other_model"), fs::copy_options::recursive);
  write_file(dir.file("other_model") + "/config.json", read_file(dir.file("other_model") + "/config.json") + "\n");
  fs::copy(model(), dir.file("other_tokenizer"), fs::copy_options::recursive);
  Json tokenizer_config = read_json_file(dir.file("other_tokenizer") + "/tokenizer_config.json");
  tokenizer_config["add_eos_token"] = true;
  write_file(dir.file("other_tokenizer") + "/tokenizer_config.json", tokenizer_config.dump());
  const int64_t candidates_before = count_rows(db, "SELECT count(*) FROM candidates");
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  for (const Case& c : {Case{manual(dir.file("bad"), "1e-3", model(), child), "is a fine-tuned model"},
                        Case{manual(dir.file("bad"), "1e-3", dir.file("other_model"), parent), "is not the model of sweep \"s\""},
                        Case{manual(dir.file("bad"), "1e-3", dir.file("other_tokenizer"), parent), "is not the one sweep \"s\" used"}}) {
    CommandResult refused = run_command(c.argv);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_EQ(count_lines(refused.err), 1) << refused.err;
    EXPECT_NE(refused.err.find(c.says), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(dir.file("bad")));
  }
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates"), candidates_before);
}

// While a coordinator runs the sweep, cdmoe-train --db is refused before it trains; a run that
// finishes while one runs is complete on disk but unrecorded (exit 75), and the same command
// records it once the coordinator has gone.
TEST_F(TrainCli, DbRunsWaitForTheSweepsCoordinatorAndAFinishedRunIsRecordedLater) {
  TempDir dir;
  const std::string db = dir.file("r.db");
  const int64_t parent = swept_point(db);
  ASSERT_GT(parent, 0);
  const std::vector<std::string> a = {kTrain, "--model", model(), "--db", db, "--candidate", std::to_string(parent),
                                      "--data", file("calib.txt"), "--out", dir.file("ft"), "--steps", "12",
                                      "--batch-size", "2", "--seq-len", "16", "--lr", "1e-3", "--threads", "1"};
  hold_lease(db, "s");
  CommandResult refused = run_command(a);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_EQ(count_lines(refused.err), 1) << refused.err;
  EXPECT_NE(refused.err.find("is being run by another cdmoe-sweep"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("once it has stopped"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir.file("ft")));
  release_lease(db);

  // A coordinator starts while the run trains (the run is held still meanwhile, so it cannot
  // finish first).
  {
    BackgroundCommand job(a);
    ASSERT_TRUE(wait_until(120, [&] { return fs::exists(dir.file("ft") + "/train_log.jsonl") && !read_file(dir.file("ft") + "/train_log.jsonl").empty(); }))
        << "no training step was logged";
    job.signal_leader(SIGSTOP);
    hold_lease(db, "s");
    job.signal_leader(SIGCONT);
    CommandResult finished = job.wait();
    EXPECT_EQ(finished.exit_code, 75) << finished.err;
    EXPECT_NE(finished.err.find("is complete but not recorded"), std::string::npos) << finished.err;
  }
  EXPECT_TRUE(fs::exists(dir.file("ft") + "/config.json"));
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'train'"), 0);
  CommandResult still = run_command(a);
  EXPECT_EQ(still.exit_code, 75) << still.err;
  release_lease(db);
  CommandResult recorded = run_command(a);
  ASSERT_EQ(recorded.exit_code, 0) << recorded.err;
  EXPECT_NE(recorded.err.find("holds the finished run already"), std::string::npos) << recorded.err;
  EXPECT_NE(recorded.out.find("recorded candidate"), std::string::npos) << recorded.out;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps f JOIN candidates c ON c.id = f.candidate_id WHERE c.stage = 'train'"), 12);
}

// cdmoe-train's checkpoints are checked before the run directory is touched: a damaged one is
// refused in one line, and the log (which a resume trims) keeps every line.
TEST_F(TrainCli, ADamagedCheckpointIsRefusedBeforeTheLogIsTouched) {
  TempDir dir;
  std::vector<std::string> a = train(args(dir.file("out"), 400));
  a.insert(a.end(), {"--checkpoint-every", "0"});
  {
    BackgroundCommand job(a);
    ASSERT_TRUE(wait_until(120, [&] { return fs::exists(dir.file("out") + "/train_log.jsonl") && count_lines(read_file(dir.file("out") + "/train_log.jsonl")) >= 2; }))
        << "no training steps were logged";
    job.signal_leader(SIGTERM);
    ASSERT_EQ(job.wait().exit_code, 75);
  }
  const std::string state = dir.file("out") + "/trainer_state.safetensors";
  std::string bytes = read_file(state);
  bytes[bytes.size() - bytes.size() / 4] ^= 0x40;
  write_file(state, bytes);
  // A log line past the checkpoint, as a kill leaves one: a resume would trim it.
  write_file(dir.file("out") + "/train_log.jsonl", read_file(dir.file("out") + "/train_log.jsonl") + "{\"step\": 399, \"loss\": 1}\n");
  const std::string log_before = read_file(dir.file("out") + "/train_log.jsonl");
  CommandResult r = run_command(a);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("trainer_state.safetensors: the checkpoint's tensors do not match their checksum"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir.file("out") + "/train_log.jsonl"), log_before);
}

// The sweep's own fine-tuning: every budget point that condenses is fine-tuned as its child and
// evaluated in full, and the control fine-tunes the original's MoE blocks of those layers.
TEST_F(TrainCli, SweepFineTunesEveryCondensedBudgetPointAndTheControl) {
  TempDir dir;
  const std::string db = dir.file("r.db");
  std::vector<std::string> a = local(sweep_args(db, "s"));
  for (const std::string& x : finetune_args(4)) a.push_back(x);
  a.insert(a.end(), {"--ppl", file("calib.txt")});
  CommandResult r = run_command(a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int64_t points = count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'full_eval' AND plan_json LIKE '%condense%'");
  ASSERT_GT(points, 0);
  // One DONE child per condensing point (and the control, the original's): same plan, method +
  // _ft, 4 loss rows, evaluated in full.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates c JOIN candidates p ON p.id = c.parent_id "
                           "WHERE c.stage = 'finetune' AND c.state = 'DONE' AND p.stage = 'full_eval' "
                           "AND c.plan_hash = p.plan_hash AND c.method = p.method || '_ft'"), points + 1);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps f JOIN candidates c ON c.id = f.candidate_id "
                           "WHERE c.method != 'original_ft'"), 4 * points);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE stage = 'finetune' AND task_acc_mean IS NOT NULL "
                           "AND finetune_loss IS NOT NULL AND js_logits_model IS NOT NULL AND speedup IS NOT NULL"), points);
  // Their speed is their parent's measurement (one architecture, one number), every speed metric of it.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results c JOIN results p ON p.candidate_id = c.parent_id "
                           "WHERE c.stage = 'finetune' AND c.speed_shared_from = p.candidate_id AND c.speedup = p.speedup "
                           "AND c.tokens_per_s = p.tokens_per_s AND c.speed_pairs = p.speed_pairs"), points);
  // The control: the original model, its MoE blocks trained the same way, parent = the original.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates c JOIN candidates p ON p.id = c.parent_id "
                           "WHERE c.method = 'original_ft' AND c.state = 'DONE' AND p.method = 'original'"), 1);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps f JOIN candidates c ON c.id = f.candidate_id "
                           "WHERE c.method = 'original_ft'"), 4);
  // The learning rate follows the schedule: --finetune-lr at step 0, cosine-decaying after.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps WHERE step = 0 AND lr = 1e-3"), points + 1);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM finetune_steps a JOIN finetune_steps b ON a.candidate_id = b.candidate_id "
                           "WHERE b.step = a.step + 1 AND b.lr >= a.lr"), 0);
  // The control was evaluated without a divergence or speed-up (it changed "the original").
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE method = 'original_ft' AND js_logits_model IS NULL "
                           "AND speedup IS NULL AND task_acc_mean IS NOT NULL"), 1);

  // Every fine-tune kept its trained tensors beside the database (sha256 recorded with the
  // result); its checkpoint, a working file, is gone.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM artifacts a JOIN candidates c ON c.id = a.candidate_id WHERE c.stage = "
                           "'finetune' AND a.kind = 'trained_tensors' AND a.path LIKE 'r.db.artifacts/trained-%' AND length(a.sha256) = 64"),
            points + 1);
  EXPECT_TRUE(!fs::exists(db + ".finetune") || fs::is_empty(db + ".finetune")) << "the DONE fine-tunes' checkpoints are deleted";
  // Each exports as it was evaluated: the export, loaded by cdmoe-eval in a fresh process, gives
  // the perplexity and task accuracy the sweep recorded for it.
  const SweepOutcome outcome = read_outcome(db, "s");
  db::Connection connection = db::open_database(db, db::OpenMode::kReadOnly);
  db::Statement finetunes(connection, "SELECT id, stage || ' ' || plan_hash, parent_id FROM candidates WHERE stage = 'finetune'");
  while (finetunes.step()) {
    const std::string id = std::to_string(finetunes.column_int(0)), out = dir.file("export-" + id);
    CommandResult exported = run_command({kExport, "--model", model(), "--db", db, "--candidate", id, "--out", out});
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    CommandResult evaluated = run_command({kEval, "--model", out, "--ppl", file("calib.txt"), "--tasks", file("task.jsonl"),
                                           "--calib-samples", "8", "--seq-len", "24", "--threads", "1", "--json"});
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
    std::map<std::string, double> got;
    const Json report = Json::parse(evaluated.out);
    for (const Json& metric : report["metrics"]) got[metric["name"].get<std::string>()] = metric["value"].get<double>();
    ASSERT_EQ(outcome.done.count(finetunes.column_text(1)), 1u) << "candidate " << id;
    const std::map<std::string, double>& recorded = outcome.done.at(finetunes.column_text(1));
    ASSERT_TRUE(got.count("perplexity") && got.count("task_acc_mean")) << evaluated.out;
    ASSERT_TRUE(recorded.count("perplexity") && recorded.count("task_acc_mean")) << "candidate " << id;
    EXPECT_NEAR(got.at("perplexity"), recorded.at("perplexity"), 1e-5 * recorded.at("perplexity")) << "candidate " << id;
    EXPECT_EQ(got.at("task_acc_mean"), recorded.at("task_acc_mean")) << "candidate " << id;
    // ... and not the untuned parent's model.
    const std::string parent = std::to_string(finetunes.column_int(2)), parent_out = dir.file("export-parent-" + id);
    ASSERT_EQ(run_command({kExport, "--model", model(), "--db", db, "--candidate", parent, "--out", parent_out}).exit_code, 0);
    EXPECT_NE(read_file(out + "/model.safetensors"), read_file(parent_out + "/model.safetensors")) << "candidate " << id;
  }
  // Its trained tensors altered or gone: one line, exit 2, nothing written; never the untuned weights.
  const int64_t tuned = count_rows(db, "SELECT min(id) FROM candidates WHERE stage = 'finetune'");
  const std::string kept = dir.file(read_text(db, "SELECT path FROM artifacts WHERE candidate_id = " + std::to_string(tuned)));
  const std::string bytes = read_file(kept);
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x10;
  for (const auto& [content, says] : {std::pair{flipped, std::string("have been altered since they were recorded")},
                                      std::pair{std::string(), std::string("are missing")}}) {
    if (content.empty()) fs::remove(kept); else write_file(kept, content);
    CommandResult refused = run_command({kExport, "--model", model(), "--db", db, "--candidate", std::to_string(tuned), "--out",
                                         dir.file("refused")});
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_EQ(count_lines(refused.err), 1) << refused.err;
    EXPECT_NE(refused.err.find(says), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(dir.file("refused")));
  }
  write_file(kept, bytes);

  // Two MPI workers (fine-tunes on whichever is free, each after other tasks on its model) give
  // the same loss curves, value for value: a worker puts its model back after a fine-tune.
  const std::string db2 = dir.file("mpi.db");
  std::vector<std::string> m = mpi(3, sweep_args(db2, "s"));
  for (const std::string& x : finetune_args(4)) m.push_back(x);
  m.insert(m.end(), {"--ppl", file("calib.txt")});
  CommandResult r2 = run_command(m);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(loss_curves(db), loss_curves(db2));
  // ... and the same metrics for every candidate, the untuned budget points included.
  expect_same_outcome(read_outcome(db, "s"), read_outcome(db2, "s"), 1e-6);
}

TEST_F(TrainCli, SweepPreemptedDuringAFineTuneResumesFromItsCheckpointToTheSameCurve) {
  TempDir dir;
  auto sweep_with = [&](const std::string& db) {
    std::vector<std::string> a = local(sweep_args(db, "s"));
    for (const std::string& x : finetune_args(60)) a.push_back(x);
    a.push_back("--no-finetune-control");
    return a;
  };
  CommandResult whole = run_command(sweep_with(dir.file("whole.db")));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  const std::string db = dir.file("cut.db");
  {
    BackgroundCommand job(sweep_with(db));
    // Wait until a fine-tune has checkpointed at least once, then preempt the sweep.
    ASSERT_TRUE(wait_until(120, [&] { return fs::exists(db + ".finetune") && !fs::is_empty(db + ".finetune"); }))
        << "no fine-tune checkpointed";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    job.signal_leader(SIGTERM);
    CommandResult stopped = job.wait();
    ASSERT_EQ(stopped.exit_code, 75) << stopped.err;
  }
  EXPECT_GE(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'finetune' AND state = 'PREEMPTED'"), 1);
  // Meanwhile a fine-tune by hand of a budget point whose own fine-tune has not finished, on
  // other text: it becomes a candidate of its own and never stands in for the sweep's.
  const int64_t parent = count_rows(db, "SELECT parent_id FROM candidates WHERE stage = 'finetune' AND state IN ('WAITING', 'PREEMPTED') "
                                        "ORDER BY id LIMIT 1");
  ASSERT_GT(parent, 0);
  std::string other_text;
  for (int i = 0; i < 8; ++i) other_text += "Line " + std::to_string(i) + " of other text, about something else entirely and at length.\n";
  write_file(dir.file("other.txt"), other_text);
  CommandResult manual = run_command({kTrain, "--model", model(), "--db", db, "--candidate", std::to_string(parent), "--data",
                                      dir.file("other.txt"), "--out", dir.file("manual"), "--steps", "3", "--batch-size", "2",
                                      "--seq-len", "16", "--lr", "1e-3", "--threads", "1"});
  ASSERT_EQ(manual.exit_code, 0) << manual.err;
  CommandResult resumed = run_command(sweep_with(db));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'train' AND state = 'DONE' AND parent_id = " +
                               std::to_string(parent)),
            1);
  // The sweep's own fine-tune of that point trained as long as the uninterrupted sweep's did.
  const std::string tokens_of = "SELECT r.finetune_tokens FROM results r JOIN candidates p ON p.id = r.parent_id "
                                "WHERE r.stage = 'finetune' AND r.state = 'DONE' AND p.plan_hash = (SELECT plan_hash FROM candidates WHERE id = " +
                                std::to_string(parent) + ")";
  const int64_t uninterrupted_tokens = count_rows(dir.file("whole.db"), tokens_of);
  EXPECT_GT(uninterrupted_tokens, 0);
  EXPECT_EQ(count_rows(db, tokens_of), uninterrupted_tokens);
  // At least one fine-tune continued from a checkpoint rather than from step 0 ...
  EXPECT_GE(count_rows(db, "SELECT count(*) FROM results WHERE stage = 'finetune' AND finetune_resumed_from > 0"), 1);
  // ... and every loss curve is the uninterrupted sweep's, value for value.
  auto a = loss_curves(dir.file("whole.db")), b = loss_curves(db);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
}

}  // namespace
}  // namespace cdmoe::testing
