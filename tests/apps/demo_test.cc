// The README's demo, shortened (scripts/demo-sweep --quick: a budget of 3 condensed layers, 10
// fine-tuning steps, 100 task items), on the demo model the repository carries:
// it runs end to end under mpirun, the trained model is far above chance on its task, dropping
// layers diverges more than condensing them at every budget, and every fine-tuned point has its
// loss curve. The full demo's figures are a benchmark (BENCHMARKS.md), not asserted here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/apps/sweep_fixture.h"

namespace cdmoe::testing {
namespace {

TEST(Demo, QuickDemoShowsCondensingBeatsDropping) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("CDMOE_BIN", CDMOE_BIN_DIR, 1);
  TempDir dir;
  CommandResult r = run_command({std::string(CDMOE_SOURCE_DIR) + "/scripts/demo-sweep", dir.file("demo"), "--quick"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string db = dir.file("demo") + "/results.db";
  EXPECT_TRUE(std::filesystem::exists(dir.file("demo") + "/report.html"));
  // The trained model knows its text: above the 25% of chance on the held-out names task (100 items
  // here, so only a loose bound; the full demo's figure with its standard error is in BENCHMARKS.md).
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM results WHERE method = 'original' AND kjv_names_acc > 0.35"), 1);
  // The original's output moves more when the layers are dropped than when they are condensed
  // (shared only, or shared + 2 experts), and so does the held-out perplexity.
  for (const char* budget : {"layers:3"}) {
    EXPECT_EQ(count_rows(db, std::string("SELECT count(*) FROM results d JOIN results c ON c.budget = d.budget "
                                         "AND c.stage = d.stage WHERE d.stage = 'full_eval' AND d.budget = '") +
                                 budget + "' AND d.method = 'drop' AND c.method IN ('cdmoe_s', 'cdmoe_sr_k2') "
                                          "AND c.js_logits_model < d.js_logits_model"),
              2)
        << budget;
    EXPECT_EQ(count_rows(db, std::string("SELECT count(*) FROM results d JOIN results c ON c.budget = d.budget "
                                         "AND c.stage = d.stage WHERE d.stage = 'full_eval' AND d.budget = '") +
                                 budget + "' AND d.method = 'drop' AND c.method IN ('cdmoe_s', 'cdmoe_sr_k2') "
                                          "AND c.perplexity < d.perplexity"),
              2)
        << budget;
  }
  // Every condensed point was fine-tuned, with its 10-step loss curve, and so was the control.
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'finetune' AND state = 'DONE'"),
            count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'full_eval' AND plan_json LIKE '%condense%'") + 1);
  EXPECT_EQ(count_rows(db, "SELECT count(*) FROM candidates c WHERE stage = 'finetune' AND "
                           "(SELECT count(*) FROM finetune_steps f WHERE f.candidate_id = c.id) != 10"),
            0);
}

}  // namespace
}  // namespace cdmoe::testing
