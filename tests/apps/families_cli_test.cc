// The whole campaign on the families added after the paper's two (Qwen3-MoE, Mixtral, OLMoE without
// shared experts; DeepSeek-V2 and V3 with MLA and their group routers, V3 also in FP8): a tiny
// random checkpoint of each, written by the real cdmoe-synth, goes through
// cdmoe-sweep with fine-tuning to DONE, cdmoe-train (--train all and a DB candidate), cdmoe-export
// of a condensed point and cdmoe-eval of the export. Their logits are checked against the PyTorch
// reference in tests/model/golden_test.cc; this is that every tool takes them.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/apps/sweep_fixture.h"
#include "tests/test_util.h"

namespace cdmoe::testing {
namespace {

const std::string kSynth = std::string(CDMOE_BIN_DIR) + "/cdmoe-synth";
const std::string kTrainApp = std::string(CDMOE_BIN_DIR) + "/cdmoe-train";
const std::string kEvalApp = std::string(CDMOE_BIN_DIR) + "/cdmoe-eval";
const std::string kExportApp = std::string(CDMOE_BIN_DIR) + "/cdmoe-export";

class FamilyCampaign : public SweepCli, public ::testing::WithParamInterface<std::string> {};

// A family, or "<family>_fp8": its checkpoint with F8_E4M3 projections (cdmoe-synth --fp8).
TEST_P(FamilyCampaign, SweepsWithFineTuningTrainsExportsAndEvaluates) {
  const bool fp8 = GetParam().size() > 4 && GetParam().compare(GetParam().size() - 4, 4, "_fp8") == 0;
  const std::string family = fp8 ? GetParam().substr(0, GetParam().size() - 4) : GetParam();
  TempDir dir;
  const std::string model = dir.file("model");
  std::vector<std::string> synth_args = {kSynth, "--out", model, "--family", family, "--tokenizer",
                                         std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2/tokenizer.json",
                                         "--hidden", "32", "--layers", "3", "--experts", "6", "--top-k", "2",
                                         "--expert-inner", "16", "--seed", "4"};
  if (fp8) synth_args.push_back("--fp8");
  CommandResult synth = run_command(synth_args);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  if (fp8) {
    EXPECT_NE(read_file(model + "/model.safetensors").find("F8_E4M3"), std::string::npos);
  }
  CommandResult fp8_elsewhere = run_command({kSynth, "--out", dir.file("fp8_mixtral"), "--family", "mixtral", "--fp8"});
  EXPECT_EQ(fp8_elsewhere.exit_code, 2) << fp8_elsewhere.err;
  EXPECT_NE(fp8_elsewhere.err.find("--fp8 is for --family deepseek_v3"), std::string::npos) << fp8_elsewhere.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("fp8_mixtral")));
  CommandResult unknown = run_command({kSynth, "--out", dir.file("nosuch"), "--family", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("--family \"nosuch\" is not one of deepseek, deepseek_v2, deepseek_v3, glm4_moe"), std::string::npos) << unknown.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("nosuch")));

  auto sweep = [&](const std::string& db, const std::string& experts_kept) {
    return std::vector<std::string>{kSweep, "--model", model, "--calib", file("calib.txt"), "--calib-samples", "8",
                                    "--seq-len", "24", "--db", db, "--sweep", "s", "--experts-kept", experts_kept,
                                    "--budgets", "layers:1-2", "--tasks", file("task.jsonl"), "--speed-repeats", "2",
                                    "--speed-max-s", "0", "--threads", "1", "--finetune-data", file("calib.txt"),
                                    "--finetune-steps", "2", "--finetune-batch-size", "2", "--finetune-seq-len", "16",
                                    "--finetune-lr", "1e-3"};
  };
  // CD-MoE-S keeps only shared experts: refused where the family has none, nothing written.
  const bool shared_experts = family == "deepseek_v2" || family == "deepseek_v3" || family == "glm4_moe";
  if (!shared_experts) {
    CommandResult zero = run_command(sweep(dir.file("zero.db"), "0,2"));
    EXPECT_EQ(zero.exit_code, 2) << zero.err;
    EXPECT_NE(zero.err.find("k = 0 (CD-MoE-S) keeps only shared experts, and this " + family + " model has none"),
              std::string::npos) << zero.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("zero.db")));
  }

  // auto = the config's top-k (2), and 0 with shared experts: every candidate DONE, condensed
  // points fine-tuned and scored.
  const std::string db = dir.file("r.db");
  CommandResult r = run_command(sweep(db, "auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE state != 'DONE'"), 0);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE plan_json LIKE '%\"experts\":[]%'") > 0, shared_experts);
  const int64_t condensed = count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'full_eval' AND "
                                           "plan_json LIKE '%condense%'");
  ASSERT_GT(condensed, 0);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE stage = 'finetune' AND method != 'original_ft' AND "
                           "task_acc_mean IS NOT NULL AND finetune_loss IS NOT NULL AND js_logits_model IS NOT NULL"),
            condensed);

  // The most condensed point: trained further by cdmoe-train as a candidate of its own, and
  // exported; the export loads in cdmoe-eval.
  const int64_t point = count_rows(db, "SELECT id FROM candidates WHERE stage = 'full_eval' AND plan_json LIKE "
                                       "'%condense%' ORDER BY length(plan_json) DESC, id LIMIT 1");
  CommandResult trained = run_command({kTrainApp, "--model", model, "--db", db, "--candidate", std::to_string(point),
                                       "--data", file("calib.txt"), "--out", dir.file("ft"), "--steps", "2",
                                       "--batch-size", "2", "--seq-len", "16", "--lr", "1e-3", "--threads", "1"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'train' AND state = 'DONE' AND parent_id = " +
                               std::to_string(point)), 1);
  CommandResult exported = run_command({kExportApp, "--model", model, "--db", db, "--candidate", std::to_string(point),
                                        "--out", dir.file("export")});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  // The cdmoe-train run, exported from the database (its trained tensors kept beside it), is
  // the model the run wrote itself, byte for byte.
  const int64_t trained_id = count_rows(db, "SELECT id FROM candidates WHERE stage = 'train'");
  CommandResult exported_run = run_command({kExportApp, "--model", model, "--db", db, "--candidate", std::to_string(trained_id),
                                            "--out", dir.file("export-train"), "--format", "cdmoe", "--dtype", "float32"});
  ASSERT_EQ(exported_run.exit_code, 0) << exported_run.err;
  EXPECT_EQ(read_file(dir.file("export-train") + "/model.safetensors"), read_file(dir.file("ft") + "/model.safetensors"));
  CommandResult evaluated = run_command({kEvalApp, "--model", dir.file("export"), "--ppl", file("calib.txt"), "--json"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  EXPECT_NE(evaluated.out.find("\"perplexity\""), std::string::npos) << evaluated.out;

  // --train all: every parameter of the original, q/k norms included, trains and reloads.
  CommandResult all = run_command({kTrainApp, "--model", model, "--train", "all", "--data", file("calib.txt"), "--out",
                                   dir.file("all"), "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--lr",
                                   "1e-3", "--threads", "1"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  CommandResult reloaded = run_command({kEvalApp, "--model", dir.file("all"), "--ppl", file("calib.txt"), "--json"});
  EXPECT_EQ(reloaded.exit_code, 0) << reloaded.err;
}

INSTANTIATE_TEST_SUITE_P(NewFamilies, FamilyCampaign, ::testing::Values("qwen3_moe", "mixtral", "olmoe", "deepseek_v2", "deepseek_v3", "deepseek_v3_fp8", "glm4_moe"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cdmoe::testing
