// End-to-end: cdmoe-export writes a checkpoint that loads on its own, gives the logits of the
// source model under the plan, and holds exactly core's analytic parameter count.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/param_count.h"
#include "db/store.h"
#include "model/checkpoint.h"
#include "model/moe_model.h"
#include "tests/db/db_test_util.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

using testing::run_command;
using testing::TempDir;
using testing::kGoldenModelFixtures;

const std::string kExport = std::string(CDMOE_BIN_DIR) + "/cdmoe-export";
const std::string kSynth = std::string(CDMOE_BIN_DIR) + "/cdmoe-synth";
const std::string kModels = std::string(CDMOE_TEST_FIXTURES) + "/model";

int64_t elements_in(const std::string& dir) {
  model::Checkpoint checkpoint(dir);
  int64_t total = 0;
  for (const std::string& name : checkpoint.tensor_names()) total += checkpoint.find(name).info->elements();
  return total;
}

class Export : public ::testing::TestWithParam<std::string> {};

TEST_P(Export, SameLogitsAndTheAnalyticParameterCount) {
  std::string source = kModels + "/" + GetParam();
  auto original = model::MoeModel::load(source);
  at::Tensor ids = at::arange(14, at::kLong).view({2, 7}) * 11 % original->shape().vocab_size;
  TempDir dir;
  int exported = 0, refused = 0;
  for (const char* name : {"condense", "condense_shared_only", "condense_one", "drop", "prune", "prune_one", "mixed",
                           "drop_block"}) {
    std::string plan_path = source + "/plans/" + std::string(name) + ".json";
    if (access(plan_path.c_str(), F_OK) != 0) continue;
    std::string out = dir.file(name);
    // This project's form, for every family and plan; in float32, what the model computes with.
    auto r = run_command({kExport, "--model", source, "--plan", plan_path, "--out", out, "--format", "cdmoe", "--dtype", "float32"});
    Plan plan = Plan::read_file(plan_path);
    // A group-limited router's pruned layer cannot be written: renumbering breaks its groups.
    bool prunes = std::any_of(plan.layers().begin(), plan.layers().end(),
                              [](const auto& entry) { return entry.second.op == LayerOp::kPrune; });
    if (prunes && original->shape().n_group > 1) {
      EXPECT_EQ(r.exit_code, 2) << r.err;
      EXPECT_NE(r.err.find("cannot be exported: its renumbered experts would lose their groups"), std::string::npos) << r.err;
      EXPECT_FALSE(std::filesystem::exists(out)) << out;
      ++refused;
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(elements_in(out), count_parameters(original->shape(), plan).total()) << GetParam() << " " << name;
    auto condensed = model::MoeModel::load(out);
    EXPECT_EQ(condensed->fixed_plan(), plan);
    at::Tensor expected = original->logits(ids, at::Tensor(), plan);
    at::Tensor got = condensed->logits(ids, at::Tensor(), Plan());
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-5) << GetParam() << " " << name;
    // Its layers are fixed: a plan touching them is refused; others still apply.
    int fixed_layer = plan.layers().begin()->first;
    Plan again;
    again.set_layer(fixed_layer, LayerPlan{LayerOp::kDrop, {}, {}, {}});
    EXPECT_THROW(condensed->logits(ids, at::Tensor(), again), Error);
    ++exported;
  }
  EXPECT_GE(exported + refused, 6);
  EXPECT_GE(exported, 4);
}

INSTANTIATE_TEST_SUITE_P(Families, Export, ::testing::ValuesIn(kGoldenModelFixtures));

// A sweep "s" of the model in `dir`, as far as export checks it.
db::SweepSpec sweep_of(const std::string& dir) {
  db::SweepSpec spec = testing::test_sweep("s");
  spec.model_hash = model::Checkpoint(dir).fingerprint();
  return spec;
}

TEST(ExportCli, FromADatabaseCandidateAndBadInput) {
  TempDir dir;
  std::string source = kModels + "/deepseek_gqa";
  std::string db_path = dir.file("r.db");
  int64_t id, untrained;
  {
    db::Store store(db_path);
    int64_t sweep = store.create_sweep(sweep_of(source));
    Plan plan = Plan::read_file(source + "/plans/mixed.json");
    id = store.add_candidates(sweep, {{"final", "cdmoe_sr_k2", plan, {}, "layers:2"}})[0];
    // Its fine-tune, never run: no trained tensors to export.
    untrained = store.add_candidates(sweep, {{db::kFinetuneStage, "cdmoe_sr_k2_ft", plan, id, "layers:2"}})[0];
    store.mark_dispatched(id, 1, "h");
    Result result;
    result.candidate_id = id;
    result.metrics = {{"piqa_acc", 0.625, "fraction"}, {"piqa_acc_stderr", 0.0125, "fraction"}, {"perplexity", 7.5, ""}};
    store.record_result(result);
  }
  auto r = run_command({kExport, "--model", source, "--db", db_path, "--candidate", std::to_string(id), "--out", dir.file("a"),
                        "--format", "cdmoe"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(model::MoeModel::load(dir.file("a"))->fixed_plan(), Plan::read_file(source + "/plans/mixed.json"));

  // By default, where the plan is expressible: a stock transformers checkpoint (deepseek as
  // qwen2_moe), the plan and provenance in cdmoe.json, and a model card with the candidate's
  // metrics and their standard errors.
  auto stock = run_command({kExport, "--model", source, "--db", db_path, "--candidate", std::to_string(id), "--out", dir.file("s")});
  ASSERT_EQ(stock.exit_code, 0) << stock.err;
  EXPECT_EQ(read_json_file(dir.file("s") + "/config.json")["model_type"], "qwen2_moe");
  EXPECT_EQ(read_json_file(dir.file("s") + "/cdmoe.json")["candidate"], id);
  EXPECT_TRUE(model::MoeModel::load(dir.file("s"))->fixed_plan().is_original());
  const std::string card = testing::read_file(dir.file("s") + "/README.md");
  EXPECT_EQ(card.rfind("---\nbase_model: \"deepseek_gqa\"\nlibrary_name: transformers\n", 0), 0u) << card;
  EXPECT_NE(card.find("| piqa_acc | 0.625 | 0.0125 | fraction |"), std::string::npos) << card;
  EXPECT_NE(card.find("candidate " + std::to_string(id) + " (stage `final`, method `cdmoe_sr_k2`"), std::string::npos) << card;
  EXPECT_NE(card.find("- layer 1: condensed to one dense MLP"), std::string::npos) << card;
  EXPECT_NE(card.find("cdmoe-export --model " + source), std::string::npos) << card;
  // auto falls back to this project's form where a stock class cannot hold the plan, saying why.
  auto fallback = run_command({kExport, "--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("f")});
  ASSERT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_NE(fallback.err.find("wrote --format cdmoe: --format transformers: plan layer"), std::string::npos) << fallback.err;
  EXPECT_FALSE(model::MoeModel::load(dir.file("f"))->fixed_plan().is_original());

  auto refused = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), kExport);
    auto result = run_command(args);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
    EXPECT_NE(result.err.find(text), std::string::npos) << result.err;
  };
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("a")}, "exists; refusing to overwrite");
  refused({"--model", source, "--db", db_path, "--candidate", "999", "--out", dir.file("b")}, "has no candidate 999");
  refused({"--model", source, "--db", db_path, "--candidate", std::to_string(untrained), "--out", dir.file("b")},
          "is a fine-tuned model (cdmoe_sr_k2_ft) whose trained tensors the database does not hold");
  refused({"--model", kModels + "/qwen_sharded", "--db", db_path, "--candidate", std::to_string(id), "--out", dir.file("b")},
          "is not the model of sweep \"s\"");
  testing::write_file(dir.file("bad.json"), R"({"layers":{"0":{"op":"prune","experts":[1]}}})");
  refused({"--model", source, "--plan", dir.file("bad.json"), "--out", dir.file("c")}, "layer \"0\" is a dense layer");
  testing::write_file(dir.file("noweights.json"), R"({"layers":{"1":{"op":"condense","experts":[1]}}})");
  refused({"--model", source, "--plan", dir.file("noweights.json"), "--out", dir.file("d")}, "needs router statistics");
  refused({"--model", dir.file("a"), "--plan", source + "/plans/drop.json", "--out", dir.file("e")}, "is an exported checkpoint already");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", "/proc/cdmoe-x"}, "--out '/proc/cdmoe-x'");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("none/x")}, "does not exist");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("g"), "--format", "transformers"},
          "plan layer \"0\" drops its feed-forward block and keeps its attention");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("g"), "--format", "hf"},
          "--format: \"hf\" is not one of auto, transformers, cdmoe");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("g"), "--dtype", "int8"},
          "--dtype: \"int8\" is not one of float32, bfloat16, float16");
  refused({"--model", source, "--plan", source + "/plans/drop.json", "--out", dir.file("g"), "--max-shard-mb", "0"},
          "--max-shard-mb");
  // A disk that fills up mid-write (a 64 KiB file-size limit, SIGXFSZ ignored so the write
  // fails as on a full disk): one line, exit 1, and no directory that looks like a checkpoint.
  auto full = run_command({"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"", kExport, "--model", source,
                           "--plan", source + "/plans/condense.json", "--out", dir.file("full"), "--dtype", "float32"});
  EXPECT_EQ(full.exit_code, 1) << full.err;
  EXPECT_EQ(testing::count_lines(full.err), 1) << full.err;
  EXPECT_NE(full.err.find("writing failed (File too large; disk full?)"), std::string::npos) << full.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("full")));
  // Nothing half-written was left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_TRUE(entry.path().filename() == "a" || entry.path().filename() == "s" || entry.path().filename() == "f" ||
                entry.path().filename() == "r.db" ||
                entry.path().extension() == ".json" || entry.path().string().find("r.db-") != std::string::npos)
        << entry.path();
  }
}

// The export streams: on a model of many layers, what its peak memory holds beyond the
// process itself (libtorch: measured by exporting a tiny fixture) is a fraction of the model's
// float32 weights (one decoder layer, the embedding and the head, and what the allocator
// keeps), where a loaded model would hold them all; what it writes is the model, to the bit of
// the bfloat16 rounding, whichever order it was computed in.
TEST(ExportCli, StreamsTheModelOneLayerAtATime) {
  TempDir dir;
  const std::string source = dir.file("model");
  // 24 layers; each MoE layer's 32 routed experts are 25 MB of float32, the whole ~600 MB.
  auto synth = run_command({kSynth, "--out", source, "--family", "deepseek", "--hidden", "256", "--heads", "4", "--layers", "24",
                            "--experts", "32", "--expert-inner", "256", "--shared", "1", "--top-k", "2", "--vocab", "512",
                            "--dense-inner", "512"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const int64_t model_bytes = int64_t(std::filesystem::file_size(source + "/model.safetensors"));  // float32
  ASSERT_GT(model_bytes, 550'000'000);
  testing::write_file(dir.file("original.json"), "{\"layers\": {}}");
  auto tiny = run_command({kExport, "--model", kModels + "/deepseek_gqa", "--plan", dir.file("original.json"), "--out",
                           dir.file("tiny"), "--dtype", "bfloat16"});
  ASSERT_EQ(tiny.exit_code, 0) << tiny.err;
  // --format cdmoe keeps the source's names (the stock one streams the same way, through the
  // same writer, and renames).
  auto r = run_command({kExport, "--model", source, "--plan", dir.file("original.json"), "--out", dir.file("out"), "--dtype",
                        "bfloat16", "--max-shard-mb", "60", "--format", "cdmoe"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int64_t held = r.peak_rss_bytes - tiny.peak_rss_bytes;
  std::cerr << "export peak RSS " << r.peak_rss_bytes / 1'000'000 << " MB (" << held / 1'000'000 << " MB above a tiny model's) for "
            << model_bytes / 1'000'000 << " MB of float32 weights\n";
  EXPECT_LT(held, model_bytes / 4) << "the export held a quarter of the model at once";
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/model.safetensors.index.json")));
  // Every tensor is the source's, rounded to bfloat16.
  model::Checkpoint from(source), to(dir.file("out"));
  EXPECT_EQ(to.tensor_names(), from.tensor_names());
  auto as_tensor = [](const model::Checkpoint& checkpoint, const std::string& name) {
    model::Checkpoint::Located t = checkpoint.find(name);
    return at::from_blob(const_cast<uint8_t*>(t.file->tensor_data(*t.info)), t.info->shape,
                         t.info->dtype == model::DType::kBF16 ? at::kBFloat16 : at::kFloat);
  };
  for (const std::string& name : {std::string("model.embed_tokens.weight"), std::string("model.layers.7.mlp.experts.31.down_proj.weight"),
                                  std::string("model.layers.15.self_attn.q_proj.weight"), std::string("lm_head.weight")}) {
    EXPECT_TRUE(at::equal(as_tensor(to, name), as_tensor(from, name).to(at::kBFloat16))) << name;
  }
}

// A CD-MoE-SR result keeps its weights implicit (the sweep's average routing weights): export
// takes them from the sweep's router_stats, and the exported checkpoint computes what the
// source computes under the plan with those weights written out.
TEST(ExportCli, ACondensePlanWithoutWeightsTakesTheSweepsRouterStatistics) {
  TempDir dir;
  std::string source = kModels + "/deepseek_gqa";
  auto original = model::MoeModel::load(source);
  const int layer = original->shape().moe_layers()[0];
  const int experts = int(original->shape().num_routed_experts);
  std::vector<ExpertRouting> routing;
  for (int e = 0; e < experts; ++e) routing.push_back({layer, e, double(10 + e), 0.05 * (e + 1)});
  std::string db_path = dir.file("r.db");
  int64_t id;
  std::string plan_text = "{\"layers\":{\"" + std::to_string(layer) + "\":{\"op\":\"condense\",\"experts\":[1,3]}}}";
  {
    db::Store store(db_path);
    int64_t sweep = store.create_sweep(sweep_of(source));
    id = store.add_candidates(sweep, {{"final", "cdmoe_sr_k2", Plan::parse(plan_text, "p"), {}, "layers:1"}})[0];
    ASSERT_TRUE(store.record_routing(sweep, routing, 1));
  }
  auto r = run_command({kExport, "--model", source, "--db", db_path, "--candidate", std::to_string(id), "--out", dir.file("sr")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto exported = model::MoeModel::load(dir.file("sr"));
  Plan weighted = Plan::parse("{\"layers\":{\"" + std::to_string(layer) +
                              "\":{\"op\":\"condense\",\"experts\":[1,3],\"weights\":[0.1,0.2]}}}", "w");
  at::Tensor ids = at::arange(10, at::kLong).view({2, 5});
  at::Tensor expected = original->logits(ids, at::Tensor(), weighted);
  EXPECT_TRUE(at::allclose(exported->logits(ids, at::Tensor(), Plan()), expected, 1e-5, 1e-5));
  Plan other = Plan::parse("{\"layers\":{\"" + std::to_string(layer) +
                           "\":{\"op\":\"condense\",\"experts\":[1,3],\"weights\":[0.2,0.1]}}}", "o");
  EXPECT_FALSE(at::allclose(original->logits(ids, at::Tensor(), other), expected, 1e-5, 1e-5)) << "the weights matter";
}

}  // namespace
}  // namespace cdmoe
