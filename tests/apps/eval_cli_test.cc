// End-to-end: the real cdmoe-eval binary's --ids/--dump-logits mode.
#include <cctype>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "eval/evaluation.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

using testing::CommandResult;
using testing::run_command;
using testing::TempDir;
using testing::write_file;

const std::string kEval = std::string(CDMOE_BIN_DIR) + "/cdmoe-eval";
const std::string kModel = std::string(CDMOE_TEST_FIXTURES) + "/model/qwen_sharded";

TEST(EvalCli, DumpsTheGoldenLogits) {
  TempDir dir;
  std::string out = dir.file("logits.safetensors");
  CommandResult r = run_command({kEval, "--model", kModel, "--plan", kModel + "/plans/mixed.json", "--ids",
                                 kModel + "/ids.json", "--mask", kModel + "/mask.json", "--dump-logits", out, "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  model::SafetensorsFile got(out), golden(kModel + "/golden/mixed.safetensors");
  const auto& info = got.header().tensors.at("logits");
  const auto& expected = golden.header().tensors.at("logits_masked");
  ASSERT_EQ(info.shape, expected.shape);
  ASSERT_EQ(info.dtype, model::DType::kF32);
  const float* a = reinterpret_cast<const float*>(got.tensor_data(info));
  const float* b = reinterpret_cast<const float*>(golden.tensor_data(expected));
  float worst = 0;
  for (int64_t i = 0; i < info.elements(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LE(worst, 1e-4f);
}

// --residency layers (and auto under a limit the model exceeds) holds a layer at a time and
// gives the full model's logits, byte for byte; a limit that cannot hold what the mode needs is
// one line, exit 2, naming the layer and the sizes.
TEST(EvalCli, LayerResidencyGivesTheSameLogitsAndRefusesALimitBelowALayer) {
  TempDir dir;
  const std::string model = dir.file("model");
  // 4 layers; each MoE layer ~27 MB in float32 (32 experts of 3 × 256 × 256), the model ~85 MB.
  auto synth = run_command({std::string(CDMOE_BIN_DIR) + "/cdmoe-synth", "--out", model, "--family", "deepseek", "--hidden",
                            "256", "--heads", "4", "--layers", "4", "--experts", "32", "--expert-inner", "256", "--shared", "1",
                            "--top-k", "2", "--vocab", "512", "--dense-inner", "512"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  write_file(dir.file("ids.json"), "[[1, 5, 9, 200, 7, 3], [44, 2, 511, 0, 8, 100]]");
  auto logits = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {kEval, "--model", model, "--ids", dir.file("ids.json"), "--dump-logits", dir.file(out),
                                     "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_command(args);
  };
  ASSERT_EQ(logits("full", {}).exit_code, 0);
  for (const auto& [name, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"layers", {"--residency", "layers"}},
           {"auto", {"--residency", "auto", "--device-memory-mb", "40"}},
           {"layers_two", {"--residency", "layers", "--device-memory-mb", "60"}}}) {
    auto r = logits(name, extra);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(testing::read_file(dir.file(name)), testing::read_file(dir.file("full"))) << name;
  }
  auto refused = [&](std::vector<std::string> extra, const std::string& needle) {
    auto r = logits("refused", extra);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("refused")));
  };
  // The sizes as the file's headers give them (float32 on disk, as computed), in MB rounded up.
  int64_t layer_one = 0, global = 0, total = 0;
  model::Checkpoint checkpoint(model);
  for (const std::string& name : checkpoint.tensor_names()) {
    const int64_t bytes = checkpoint.find(name).info->elements() * 4;
    total += bytes;
    if (name.rfind("model.layers.1.", 0) == 0) layer_one += bytes;
    if (name.rfind("model.layers.", 0) != 0) global += bytes;
  }
  auto mb = [](int64_t bytes) { return std::to_string((bytes + 999'999) / 1'000'000) + " MB"; };
  refused({"--residency", "layers", "--device-memory-mb", "10"}, "--device-memory-mb 10 MB: layer 1 is " + mb(layer_one) +
          " beside the embedding and head's " + mb(global) + "; give at least " + mb(layer_one + global));
  refused({"--residency", "auto", "--device-memory-mb", "10"}, "layer 1 is " + mb(layer_one));
  refused({"--residency", "full", "--device-memory-mb", "40"}, "the model's weights are " + mb(total) + "; use --residency layers");
  refused({"--residency", "some"}, "--residency: \"some\" is not one of full, layers, auto");
  refused({"--device-memory-mb", "-1"}, "--device-memory-mb");
}

TEST(EvalCli, BadInputIsOneLineExitTwoAndWritesNothing) {
  TempDir dir;
  std::string out = dir.file("logits.safetensors");
  auto expect_refused = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), kEval);
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("cdmoe-eval: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_NE(access(out.c_str(), F_OK), 0) << "an output was written";
  };
  std::string ids = dir.file("ids.json");
  write_file(ids, "[[1, 2, 3], [4, 5, 6]]");
  write_file(dir.file("ragged.json"), "[[1, 2, 3], [4, 5]]");
  write_file(dir.file("text.json"), "[[1, \"two\"]]");
  write_file(dir.file("big.json"), "[[1, 2, 96]]");
  std::string long_row = "[[";
  for (int i = 0; i < 65; ++i) long_row += (i ? "," : "") + std::to_string(i % 90);
  write_file(dir.file("long.json"), long_row + "]]");
  write_file(dir.file("plan.json"), R"({"layers": {"1": {"op": "condense", "experts": [2]}}})");
  write_file(dir.file("badplan.json"), R"({"layers": {"0": {"op": "condense", "experts": [99]}}})");

  expect_refused({"--model", kModel, "--ids", ids}, "--dump-logits is required");
  expect_refused({"--model", dir.file("none"), "--ids", ids, "--dump-logits", out}, "does not exist");
  expect_refused({"--model", kModel, "--ids", dir.file("ragged.json"), "--dump-logits", out}, "row 1 has 2 entries, row 0 has 3");
  expect_refused({"--model", kModel, "--ids", dir.file("text.json"), "--dump-logits", out}, "holds \"two\", not an integer");
  expect_refused({"--model", kModel, "--ids", dir.file("big.json"), "--dump-logits", out},
                 "big.json: row 0, position 2: token id 96 is outside the model's vocabulary 0..95");
  expect_refused({"--model", kModel, "--ids", dir.file("long.json"), "--dump-logits", out},
                 "sequence of 65 tokens exceeds max_position_embeddings 64");
  expect_refused({"--model", kModel, "--ids", ids, "--plan", dir.file("plan.json"), "--dump-logits", out},
                 "layer \"1\" is a dense layer");
  expect_refused({"--model", kModel, "--ids", ids, "--plan", dir.file("badplan.json"), "--dump-logits", out},
                 "badplan.json: layer \"0\": expert 99 is out of range");
  expect_refused({"--model", kModel, "--ids", ids, "--dump-logits", out, "--threads", "-1"}, "--threads");
  expect_refused({"--model", kModel, "--ids", ids, "--dump-logits", out, "--device", "tpu"}, "--device \"tpu\"");
  expect_refused({"--model", kModel, "--ids", ids, "--dump-logits", out, "--dtype", "fp8"}, "--dtype \"fp8\"");
  if (model::visible_cuda_devices() == 0) {
    expect_refused({"--model", kModel, "--ids", ids, "--dump-logits", out, "--device", "cuda"}, "--device cuda: this ");
  }
}

// A small random deepseek model whose vocabulary is Llama-2's, beside its real tokenizer.json;
// with `infinite_norm` its final norm's weights are +inf (every logit then is inf or NaN).
std::string write_text_model(const TempDir& dir, bool infinite_norm = false, int64_t max_positions = 512) {
  std::string out = dir.file(std::string(infinite_norm ? "poisoned" : "textmodel") + std::to_string(max_positions));
  std::filesystem::create_directories(out);
  nlohmann::json config = {{"model_type", "deepseek"}, {"hidden_size", 32}, {"num_attention_heads", 4},
                           {"num_hidden_layers", 2}, {"vocab_size", 32000}, {"intermediate_size", 48},
                           {"moe_intermediate_size", 16}, {"n_routed_experts", 4}, {"n_shared_experts", 1},
                           {"num_experts_per_tok", 2}, {"first_k_dense_replace", 1}, {"max_position_embeddings", max_positions}};
  write_file(out + "/config.json", config.dump());
  at::manual_seed(1);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) { tensors.emplace_back(name, at::randn(shape) * 0.3); };
  add("model.embed_tokens.weight", {32000, 32});
  add("lm_head.weight", {32000, 32});
  add("model.norm.weight", {32});
  for (int l = 0; l < 2; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm"}) add(p + n + ".weight", {32});
    for (const char* n : {"q", "k", "v", "o"}) add(p + "self_attn." + n + "_proj.weight", {32, 32});
    auto mlp = [&](const std::string& prefix, int64_t inner) {
      add(prefix + "gate_proj.weight", {inner, 32});
      add(prefix + "up_proj.weight", {inner, 32});
      add(prefix + "down_proj.weight", {32, inner});
    };
    if (l == 0) {
      mlp(p + "mlp.", 48);
      continue;
    }
    add(p + "mlp.gate.weight", {4, 32});
    for (int e = 0; e < 4; ++e) mlp(p + "mlp.experts." + std::to_string(e) + ".", 16);
    mlp(p + "mlp.shared_experts.", 16);
  }
  if (infinite_norm) {
    for (auto& [name, t] : tensors) {
      if (name == "model.norm.weight") t.fill_(std::numeric_limits<float>::infinity());
    }
  }
  std::vector<model::TensorToWrite> files;
  for (auto& [name, t] : tensors) files.push_back({name, model::DType::kF32, t.sizes().vec(), t.data_ptr<float>()});
  model::write_safetensors(out + "/model.safetensors", files);
  std::filesystem::copy_file(std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2/tokenizer.json", out + "/tokenizer.json");
  return out;
}

// Logits that are not finite (an overflowing plan, a broken checkpoint) make every score noise:
// cdmoe-eval fails (exit 1, one line) instead of reporting it, and writes nothing.
TEST(EvalCli, NonFiniteLogitsFailInsteadOfScoring) {
  TempDir dir;
  std::string model_dir = write_text_model(dir, /*infinite_norm=*/true);
  write_file(dir.file("ids.json"), "[[1, 2, 3]]");
  std::string out = dir.file("logits.safetensors");
  CommandResult dump = run_command({kEval, "--model", model_dir, "--ids", dir.file("ids.json"), "--dump-logits", out});
  EXPECT_EQ(dump.exit_code, 1) << dump.err;
  EXPECT_EQ(testing::count_lines(dump.err), 1) << dump.err;
  EXPECT_NE(dump.err.find("the logits under this plan are not finite"), std::string::npos) << dump.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  write_file(dir.file("calib.txt"), "Experts are condensed into one dense layer.\nThe router is gone.\n");
  CommandResult metrics = run_command({kEval, "--model", model_dir, "--ppl", dir.file("calib.txt"), "--json"});
  EXPECT_EQ(metrics.exit_code, 1) << metrics.err;
  EXPECT_NE(metrics.err.find("is not finite"), std::string::npos) << metrics.err;
  EXPECT_EQ(metrics.out, "") << "no partial report";
  // Tasks alone: every choice's log-likelihood is NaN, so the first choice would "win" every
  // item (accuracy 1.0 where gold is 0). The evaluation fails instead, naming the item.
  write_file(dir.file("task.jsonl"), R"({"context": "The router is", "choices": [" gone", " here"], "gold": 0})" "\n");
  CommandResult tasks = run_command({kEval, "--model", model_dir, "--tasks", dir.file("task.jsonl"), "--json",
                                     "--samples", dir.file("samples.jsonl")});
  EXPECT_EQ(tasks.exit_code, 1) << tasks.err;
  EXPECT_EQ(testing::count_lines(tasks.err), 1) << tasks.err;
  EXPECT_NE(tasks.err.find("item 1 choice 0: the log-likelihood is not finite"), std::string::npos) << tasks.err;
  EXPECT_EQ(tasks.out, "");
  EXPECT_FALSE(std::filesystem::exists(dir.file("samples.jsonl")));
}

// --special-tokens: lm-eval up to v0.4.9.1 encodes requests without special tokens, later
// versions with the tokenizer's own (Llama-2's BOS here): every log-likelihood moves.
TEST(EvalCli, SpecialTokensInRequestsAsTheLmEvalVersionAsked) {
  TempDir dir;
  std::string model_dir = write_text_model(dir);
  write_file(dir.file("task.jsonl"), R"({"context": "The router is", "choices": [" gone", " here"], "gold": 0})" "\n"
                                     R"({"context": "Experts are", "choices": [" condensed", " loud"], "gold": 0})" "\n");
  auto run = [&](const std::string& tokens, const std::string& samples) {
    return run_command({kEval, "--model", model_dir, "--tasks", dir.file("task.jsonl"), "--json", "--special-tokens", tokens,
                        "--samples", dir.file(samples), "--threads", "1"});
  };
  CommandResult none = run("none", "none.jsonl"), tokenizer = run("tokenizer", "tokenizer.jsonl");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  ASSERT_EQ(tokenizer.exit_code, 0) << tokenizer.err;
  CommandResult by_default = run_command({kEval, "--model", model_dir, "--tasks", dir.file("task.jsonl"), "--json",
                                          "--samples", dir.file("default.jsonl"), "--threads", "1"});
  ASSERT_EQ(by_default.exit_code, 0) << by_default.err;
  EXPECT_EQ(testing::read_file(dir.file("default.jsonl")), testing::read_file(dir.file("none.jsonl"))) << "none is the default";
  EXPECT_NE(testing::read_file(dir.file("tokenizer.jsonl")), testing::read_file(dir.file("none.jsonl")));
  CommandResult bad = run("bos", "bad.jsonl");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--special-tokens \"bos\" is not one of none, tokenizer"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.jsonl")));
}

std::map<std::string, double> metrics_of(const std::string& json_text) {
  std::map<std::string, double> metrics;
  nlohmann::json document = nlohmann::json::parse(json_text);  // outlives the loop over its member
  for (const auto& m : document["metrics"]) metrics[m["name"].get<std::string>()] = m["value"].get<double>();
  return metrics;
}

TEST(EvalCli, MetricsModeMatchesTheLibrary) {
  TempDir dir;
  std::string model_dir = write_text_model(dir);
  std::string benchmarks = std::string(CDMOE_SOURCE_DIR) + "/data/benchmarks";
  write_file(dir.file("calib.txt"), "Experts are condensed into one dense layer.\nThe router is gone after condensation.\n"
                                    "Calibration text keeps the distribution close.\nShared experts stay on for every token.\n");
  write_file(dir.file("plan.json"), R"({"layers":{"1":{"op":"condense","experts":[0,1],"weights":[0.5,0.5]}}})");
  CommandResult r = run_command({kEval, "--model", model_dir, "--plan", dir.file("plan.json"), "--tasks", "piqa,arc_easy",
                                 "--limit", "6", "--benchmarks", benchmarks, "--ppl", dir.file("calib.txt"), "--calib",
                                 dir.file("calib.txt"), "--json", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = metrics_of(r.out);
  ASSERT_GT(got.size(), 10u) << r.out << r.err;
  EXPECT_EQ(Json::parse(r.out)["device"], model::visible_cuda_devices() > 0 ? "cuda:0" : "cpu") << r.out;
  EXPECT_EQ(got.count("peak_cuda_allocated_bytes"), model::visible_cuda_devices() > 0 ? 1u : 0u);
  EXPECT_EQ(Json::parse(r.out)["dtype"], model::visible_cuda_devices() > 0 ? "bfloat16" : "float32") << r.out;
  for (const char* name : {"piqa_acc", "piqa_acc_norm", "arc_easy_acc", "arc_easy_acc_norm_stderr", "task_acc_mean",
                           "perplexity", "nll_per_token", "js_logits_model", "param_bytes", "param_bytes_materialised",
                           "param_ratio", "peak_rss_bytes"}) {
    EXPECT_TRUE(got.count(name)) << name;
  }
  EXPECT_GE(got["piqa_acc"], 0);
  EXPECT_LE(got["piqa_acc"], 1);
  EXPECT_DOUBLE_EQ(got["task_acc_mean"], (got["piqa_acc"] + got["arc_easy_acc"]) / 2);
  EXPECT_GT(got["perplexity"], 1);
  EXPECT_GT(got["js_logits_model"], 0);
  EXPECT_EQ(got["param_bytes"], got["param_bytes_materialised"]);
  EXPECT_LT(got["param_ratio"], 1);

  // One decoder layer at a time: every metric the same, to the last bit (the same bytes read the
  // same way); only the process's memory differs.
  CommandResult layered = run_command({kEval, "--model", model_dir, "--plan", dir.file("plan.json"), "--tasks", "piqa,arc_easy",
                                       "--limit", "6", "--benchmarks", benchmarks, "--ppl", dir.file("calib.txt"), "--calib",
                                       dir.file("calib.txt"), "--json", "--threads", "1", "--residency", "layers"});
  ASSERT_EQ(layered.exit_code, 0) << layered.err;
  auto layered_metrics = metrics_of(layered.out);
  EXPECT_EQ(layered_metrics.size(), got.size());
  for (const auto& [name, value] : got) {
    if (name == "peak_rss_bytes" || name == "peak_cuda_allocated_bytes") continue;
    EXPECT_EQ(layered_metrics.at(name), value) << name;
  }

  // The same evaluation through the library, in this process, on one thread like the binary
  // (so accuracies cannot flip on a near-tie of float rounding).
  at::set_num_threads(1);
  auto model = model::MoeModel::load(model_dir);
  auto tokenizer = model::Tokenizer::load(model_dir);
  eval::EvaluationRequest request;
  request.tasks = {eval::load_task("piqa", benchmarks, 6), eval::load_task("arc_easy", benchmarks, 6)};
  request.held_out = eval::load_calibration(dir.file("calib.txt"), *tokenizer, {});
  request.calibration = request.held_out;
  Plan plan = Plan::read_file(dir.file("plan.json"));
  for (const Metric& m : eval::evaluate(*model, *tokenizer, plan, request)) {
    if (m.name == "peak_rss_bytes") continue;
    EXPECT_NEAR(got[m.name], m.value, 1e-5 * std::max(1.0, std::abs(m.value))) << m.name;
  }
  // --divergence-mean sequence: the library's per-sequence mean, another figure than the token mean
  // (the four documents differ in length).
  CommandResult by_sequence = run_command({kEval, "--model", model_dir, "--plan", dir.file("plan.json"), "--calib",
                                           dir.file("calib.txt"), "--json", "--metrics", "divergence", "--threads", "1",
                                           "--divergence-mean", "sequence"});
  ASSERT_EQ(by_sequence.exit_code, 0) << by_sequence.err;
  request.divergence_mean = DivergenceMean::kSequence;
  request.metrics = {"divergence"};
  std::vector<Metric> library = eval::evaluate(*model, *tokenizer, plan, request);
  ASSERT_EQ(library.size(), 1u);
  EXPECT_NEAR(metrics_of(by_sequence.out)["js_logits_model"], library[0].value, 1e-5 * library[0].value);
  EXPECT_GT(std::abs(library[0].value - got["js_logits_model"]), 1e-4 * library[0].value);

  // Speed: the plan timed against the original; the original's speed-up is 1 by definition.
  // Pairs until the 95% interval is within +-2% or 3 s of timing have passed.
  r = run_command({kEval, "--model", model_dir, "--plan", dir.file("plan.json"), "--calib", dir.file("calib.txt"),
                   "--speed", "--json", "--metrics", "speed", "--speed-max-s", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  got = metrics_of(r.out);
  EXPECT_EQ(got.size(), 6u);
  EXPECT_GT(got["tokens_per_s"], 0);
  EXPECT_GT(got["speedup"], 0);
  EXPECT_GE(got["speed_pairs"], 3);
  EXPECT_LE(got["speedup_ci_low"], got["speedup"]);
  EXPECT_GE(got["speedup_ci_high"], got["speedup"]);
  EXPECT_GT(got["speedup_ci_low"], 0);
  EXPECT_TRUE(got["speedup_ci_high"] / got["speedup"] - 1 <= 0.02 || got["speed_pairs"] > 3)
      << "stopped at the minimum with a wide interval";
  EXPECT_GT(got["speed_tokens"], 10);
  EXPECT_LT(got["speed_tokens"], 100) << "the calibration batch's tokens";
  // The paper's protocol: one 2,000-token sequence (a model that has the positions for it).
  std::string long_model = write_text_model(dir, false, 2048);
  r = run_command({kEval, "--model", long_model, "--plan", dir.file("plan.json"), "--calib", dir.file("calib.txt"), "--speed",
                   "--json", "--metrics", "speed", "--speed-workload", "prefill-2000", "--speed-repeats", "2",
                   "--speed-max-s", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  got = metrics_of(r.out);
  EXPECT_EQ(got["speed_tokens"], 2000);
  EXPECT_EQ(got["speed_pairs"], 2) << "--speed-max-s 0: the minimum only";
  EXPECT_GT(got["speedup"], 0);
  r = run_command({kEval, "--model", model_dir, "--calib", dir.file("calib.txt"), "--speed", "--json", "--metrics", "speed"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  got = metrics_of(r.out);
  EXPECT_EQ(got["speedup"], 1.0);
  EXPECT_GT(got["tokens_per_s"], 0);

  // The original model: no divergence from itself, all its parameters.
  r = run_command({kEval, "--model", model_dir, "--calib", dir.file("calib.txt"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  got = metrics_of(r.out);
  EXPECT_NEAR(got["js_logits_model"], 0, 1e-9);
  EXPECT_EQ(got["param_ratio"], 1);
  // In bfloat16 (--dtype; the default on CUDA): the same original, its parameters at 2 bytes
  // each, still no divergence from itself.
  CommandResult half = run_command({kEval, "--model", model_dir, "--calib", dir.file("calib.txt"), "--json", "--device",
                                    "cpu", "--dtype", "bfloat16"});
  ASSERT_EQ(half.exit_code, 0) << half.err;
  EXPECT_EQ(Json::parse(half.out)["dtype"], "bfloat16");
  std::map<std::string, double> in_bf16 = metrics_of(half.out);
  EXPECT_EQ(in_bf16["param_bytes"] * 2, got["param_bytes"] * (Json::parse(r.out)["dtype"] == "bfloat16" ? 2 : 1));
  EXPECT_NEAR(in_bf16["js_logits_model"], 0, 1e-9);
  r = run_command({kEval, "--model", model_dir, "--calib", dir.file("calib.txt")});
  EXPECT_NE(r.out.find("js_logits_model"), std::string::npos) << "a table by default";
  // Progress: quiet when stderr is not a terminal, shown with --progress.
  r = run_command({kEval, "--model", model_dir, "--tasks", "arc_easy", "--limit", "3", "--benchmarks", benchmarks});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  r = run_command({kEval, "--model", model_dir, "--tasks", "arc_easy", "--limit", "3", "--benchmarks", benchmarks, "--progress"});
  EXPECT_NE(r.err.find("arc_easy requests: 12/12 ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "into a file: whole lines, no redraws";
}

// The paper's eight tasks through the binary, from both forms of the data: each task's metrics as
// an independent PyTorch computation scored the fixtures (tests/fixtures/benchmarks/scores.json,
// make_scores.py), and task_acc_mean the average the --task-average choice names.
TEST(EvalCli, ThePapersEightTasksFromEitherForm) {
  const std::string fixtures = std::string(CDMOE_TEST_FIXTURES) + "/benchmarks";
  const Json scores = read_json_file(fixtures + "/scores.json");
  const std::vector<std::string> names = {"arc_challenge", "boolq", "piqa", "rte", "openbookqa", "winogrande", "mmlu", "hellaswag"};
  std::string tasks;
  for (const std::string& name : names) tasks += (tasks.empty() ? "" : ",") + name;
  std::map<std::string, std::map<std::string, double>> by_form;
  for (const char* form : {"hf", "original"}) {
    for (const char* average : {"acc", "acc_norm"}) {
      CommandResult r = run_command({kEval, "--model", fixtures + "/byte_model", "--tasks", tasks, "--benchmarks",
                                     fixtures + "/" + form, "--task-average", average, "--json", "--threads", "1"});
      ASSERT_EQ(r.exit_code, 0) << form << ": " << r.err;
      std::map<std::string, double> got = metrics_of(r.out);
      double sum = 0;
      for (const std::string& task : names) {
        for (const auto& [metric, value] : scores[task].items()) {
          if (metric == "loglikelihoods") continue;
          ASSERT_TRUE(got.count(task + "_" + metric)) << form << " " << task << "_" << metric;
          EXPECT_NEAR(got[task + "_" + metric], value.get<double>(), 1e-12) << form << " " << task << "_" << metric;
        }
        const bool norm = std::string(average) == "acc_norm" && scores[task].contains("acc_norm");
        EXPECT_EQ(got.count(task + "_acc_norm"), scores[task].contains("acc_norm") ? 1u : 0u) << task;
        sum += scores[task][norm ? "acc_norm" : "acc"].get<double>();
      }
      EXPECT_NEAR(got["task_acc_mean"], sum / 8, 1e-12) << form << " " << average;
      got.erase("peak_rss_bytes");
      if (std::string(average) == "acc") by_form[form] = got;
    }
  }
  EXPECT_EQ(by_form["hf"], by_form["original"]) << "the same items, whichever form they come in";
}

TEST(EvalCli, MetricsModeBadInput) {
  TempDir dir;
  std::string model_dir = write_text_model(dir);
  write_file(dir.file("calib.txt"), "some text\n");
  auto refused = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), {kEval, "--model", model_dir});
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
  };
  refused({}, "nothing to evaluate");
  refused({"--tasks", "lambada"}, "unknown task \"lambada\"");
  unsetenv("CDMOE_BENCHMARKS_DIR");
  refused({"--tasks", "piqa"}, "task piqa needs --benchmarks DIR");
  refused({"--tasks", "hellaswag"}, "task hellaswag needs --benchmarks DIR (or $CDMOE_BENCHMARKS_DIR) holding hellaswag_validation.jsonl");
  refused({"--calib", dir.file("calib.txt"), "--seq-len", "1000"}, "--seq-len 1000 exceeds the model's max_position_embeddings 512");
  refused({"--calib", dir.file("calib.txt"), "--divergence", "wasserstein"}, "--divergence: objective \"wasserstein\" is not one of");
  refused({"--calib", dir.file("calib.txt"), "--divergence-mean", "document"}, "--divergence-mean: \"document\" is not one of token, sequence");
  const std::string real_tasks = std::string(CDMOE_SOURCE_DIR) + "/data/benchmarks";
  refused({"--tasks", "piqa", "--benchmarks", real_tasks, "--task-average", "acc_normal"},
          "--task-average: entry \"acc_normal\" is not TASK=acc or TASK=acc_norm");
  refused({"--speed", "--ppl", dir.file("calib.txt")}, "--speed times the plan on --calib");
  refused({"--calib", dir.file("calib.txt"), "--speed", "--speed-workload", "decode"},
          "--speed-workload \"decode\" is not one of calibration, prefill-2000");
  refused({"--calib", dir.file("calib.txt"), "--speed", "--speed-ci", "0"}, "--speed-ci must be positive");
  refused({"--calib", dir.file("calib.txt"), "--speed", "--speed-max-s", "-1"}, "--speed-max-s must be 0 or positive");
  refused({"--calib", dir.file("calib.txt"), "--speed", "--speed-repeats", "0"}, "--speed-repeats must be at least 1");
  refused({"--calib", dir.file("calib.txt"), "--speed", "--speed-workload", "prefill-2000", "--metrics", "speed"},
          "--speed-workload prefill-2000: the model's max_position_embeddings 512 is below 2,000 tokens");
  refused({"--calib", dir.file("missing.txt")}, "missing.txt");
  write_file(dir.file("bad.jsonl"), "{\"text\": \"fine\"}\n{\"txt\": 1}\n");
  refused({"--ppl", dir.file("bad.jsonl")}, "bad.jsonl:2: missing required field 'text'");
  refused({"--metrics", "flops"}, "unknown metric \"flops\" (registered: tasks, perplexity, divergence, speed, memory)");
  refused({"--metrics", "memory,perplexity", "--calib", dir.file("calib.txt")},
          "metric \"perplexity\" needs held-out text, which was not given");
}

// --samples: every item's outcome, as the task's accuracy counts it; cdmoe-paired compares two
// such files item by item (its arithmetic: tests/eval/paired_accuracy_test.cc).
TEST(EvalCli, SamplesFilesComparedItemByItem) {
  TempDir dir;
  std::string model_dir = write_text_model(dir);
  const std::string benchmarks = std::string(CDMOE_SOURCE_DIR) + "/data/benchmarks";
  const std::string paired = std::string(CDMOE_BIN_DIR) + "/cdmoe-paired";
  write_file(dir.file("plan.json"), R"({"layers":{"1":{"op":"drop"}}})");
  auto evaluate_with_samples = [&](const std::vector<std::string>& extra, const std::string& samples) {
    std::vector<std::string> args = {kEval, "--model", model_dir, "--tasks", "arc_easy,piqa", "--limit", "20", "--benchmarks",
                                     benchmarks, "--samples", samples, "--json", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return metrics_of(r.out);
  };
  auto original = evaluate_with_samples({}, dir.file("original.jsonl"));
  auto dropped = evaluate_with_samples({"--plan", dir.file("plan.json")}, dir.file("dropped.jsonl"));
  // The file's outcomes average to the reported accuracies, task by task.
  std::map<std::string, std::vector<double>> acc, acc_norm;
  int lines = 0;
  for_each_json_line(read_text_file(dir.file("dropped.jsonl")), "dropped.jsonl", [&](const Json& line, const std::string&) {
    ++lines;
    acc[line["task"]].push_back(line["acc"].get<double>());
    acc_norm[line["task"]].push_back(line["acc_norm"].get<double>());
    EXPECT_EQ(line["loglikelihoods"].size(), line["task"] == "piqa" ? 2u : 4u);
    EXPECT_EQ(line["acc"].get<int>(), int(line["chosen"] == line["gold"]));
    return true;
  });
  EXPECT_EQ(lines, 40);
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / double(v.size());
  };
  for (const char* task : {"arc_easy", "piqa"}) {
    EXPECT_DOUBLE_EQ(mean(acc[task]), dropped[std::string(task) + "_acc"]) << task;
    EXPECT_DOUBLE_EQ(mean(acc_norm[task]), dropped[std::string(task) + "_acc_norm"]) << task;
  }
  // B - A per task, from the two files, as the accuracies say.
  CommandResult r = run_command({paired, "--a", dir.file("original.jsonl"), "--b", dir.file("dropped.jsonl"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json rows = Json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0]["task"], "arc_easy");
  for (const Json& row : rows) {
    std::string task = row["task"];
    EXPECT_EQ(row["items"], 20);
    EXPECT_NEAR(row["difference"].get<double>(), dropped[task + "_acc"] - original[task + "_acc"], 1e-12) << task;
    EXPECT_NEAR(row["only_b"].get<double>() - row["only_a"].get<double>(), 20 * row["difference"].get<double>(), 1e-9);
    EXPECT_GE(row["stderr_paired"].get<double>(), 0);
  }
  r = run_command({paired, "--a", dir.file("dropped.jsonl"), "--b", dir.file("dropped.jsonl"), "--metric", "acc_norm", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const Json& row : Json::parse(r.out)) {
    EXPECT_EQ(row["difference"], 0);
    EXPECT_EQ(row["stderr_paired"], 0);
  }
  // Bad input: one line, exit 2, nothing written.
  auto refused = [&](std::vector<std::string> args, const std::string& text) {
    CommandResult bad = run_command(args);
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_EQ(testing::count_lines(bad.err), 1) << bad.err;
    EXPECT_NE(bad.err.find(text), std::string::npos) << bad.err;
  };
  refused({kEval, "--model", model_dir, "--ppl", dir.file("plan.json"), "--samples", dir.file("s.jsonl")},
          "--samples records task items; give --tasks");
  refused({kEval, "--model", model_dir, "--tasks", "piqa", "--benchmarks", benchmarks, "--samples", dir.file("no/s.jsonl")},
          "--samples '" + dir.file("no/s.jsonl") + "': directory '" + dir.file("no") + "' does not exist");
  EXPECT_FALSE(std::filesystem::exists(dir.file("s.jsonl")));
  refused({paired, "--a", dir.file("original.jsonl")}, "--b is required");
  write_file(dir.file("fewer.jsonl"), read_text_file(dir.file("original.jsonl")).substr(0, 10));
  refused({paired, "--a", dir.file("original.jsonl"), "--b", dir.file("fewer.jsonl")}, "fewer.jsonl:1: not valid JSON");
  CommandResult fewer = run_command({kEval, "--model", model_dir, "--tasks", "arc_easy,piqa", "--limit", "5", "--benchmarks",
                                     benchmarks, "--samples", dir.file("fewer.jsonl")});
  ASSERT_EQ(fewer.exit_code, 0) << fewer.err;
  refused({paired, "--a", dir.file("original.jsonl"), "--b", dir.file("fewer.jsonl")},
          "fewer.jsonl: task arc_easy has 5 items, " + dir.file("original.jsonl") + " 20: not the same items");
}

// The registry by name: --metrics picks registered metrics; each writes its own values only.
TEST(EvalCli, MetricsAreChosenByRegisteredName) {
  TempDir dir;
  std::string model_dir = write_text_model(dir);
  write_file(dir.file("calib.txt"), "some text to measure\nand another line\n");
  CommandResult r = run_command({kEval, "--model", model_dir, "--metrics", "memory", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = metrics_of(r.out);
  EXPECT_EQ(got.size(), 4u) << r.out;
  EXPECT_EQ(got.count("param_bytes"), 1u);
  EXPECT_EQ(got["param_ratio"], 1);
  r = run_command({kEval, "--model", model_dir, "--calib", dir.file("calib.txt"), "--ppl", dir.file("calib.txt"),
                   "--metrics", "perplexity,divergence", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  got = metrics_of(r.out);
  EXPECT_EQ(got.size(), 3u) << r.out;
  EXPECT_EQ(got.count("perplexity") + got.count("nll_per_token") + got.count("js_logits_model"), 3u) << r.out;
  r = run_command({kEval, "--help"});
  std::string help;  // the help text with its line wrapping undone
  for (char c : r.out) {
    if (!std::isspace(static_cast<unsigned char>(c))) help += c;
    else if (!help.empty() && help.back() != ' ') help += ' ';
  }
  for (const char* name : {"tasks (", "perplexity (", "divergence (", "speed (", "memory ("}) {
    EXPECT_NE(help.find(name), std::string::npos) << name << " in " << help;
  }
}

}  // namespace
}  // namespace cdmoe
