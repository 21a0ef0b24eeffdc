// End-to-end: the real cdmoe-report and cdmoe-db binaries on a database written by the Store.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "db/database.h"
#include "db/store.h"
#include "tests/db/db_test_util.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

using testing::CommandResult;
using testing::run_command;
using testing::TempDir;

const std::string kReport = std::string(CDMOE_BIN_DIR) + "/cdmoe-report";
const std::string kDbTool = std::string(CDMOE_BIN_DIR) + "/cdmoe-db";

// Sweep "demo": original (acc .62, 16 GB, 1.0x), three condensed points of which one is
// dominated, one FAILED candidate and one still WAITING.
void write_demo_db(const std::string& path, const std::string& sweep_name = "demo") {
  db::Store store(path);
  int64_t sweep = store.create_sweep(testing::test_sweep(sweep_name));
  std::vector<db::CandidateSpec> specs;
  for (int layers = 0; layers <= 5; ++layers) {
    Plan plan;
    for (int l = 1; l <= layers; ++l) plan.set_layer(l, LayerPlan{LayerOp::kCondense, {0, 1}, {}, {}});
    specs.push_back({"final", layers ? "cdmoe_sr" : "original", plan, {}, "layers:" + std::to_string(layers)});
  }
  auto ids = store.add_candidates(sweep, specs);
  struct Figures { double acc, bytes, speedup; };
  const Figures figures[] = {{0.62, 16e9, 1.0}, {0.60, 14e9, 1.1}, {0.55, 12e9, 1.25}, {0.54, 13e9, 1.2}};
  std::vector<Result> results;
  for (int i = 0; i < 4; ++i) {
    store.mark_dispatched(ids[size_t(i)], 1, "node1");
    Result r;
    r.candidate_id = ids[size_t(i)];
    r.metrics = {{"task_acc_mean", figures[i].acc, "ratio"},
                 {"param_bytes", figures[i].bytes, "bytes"},
                 {"speedup", figures[i].speedup, "ratio"},
                 {"js_logits", 0.01 * i, "nats"}};
    results.push_back(r);
  }
  store.mark_dispatched(ids[4], 2, "node2");
  Result failed;
  failed.candidate_id = ids[4];
  failed.ok = false;
  failed.error = "CUDA out of memory, with, commas";
  results.push_back(failed);
  store.record_results(results);
  store.record_routing(sweep, {{2, 1, 20, 0.3}, {1, 0, 30, 0.4}, {1, 1, 10, 0.2}, {1, 2, 0, 0}, {2, -1, 40, 0.9}, {2, 0, 20, 0.3}}, 1);
}

void expect_usage_error(const CommandResult& r, const std::string& program, const std::string& text) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind(program + ": error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(ReportCli, SweepsTable) {
  TempDir dir;
  write_demo_db(dir.file("r.db"));
  CommandResult r = run_command({kReport, "--db", dir.file("r.db"), "sweeps"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("demo"), std::string::npos);
  EXPECT_NE(r.out.find("(1 row)"), std::string::npos);
  r = run_command({kReport, "--db", dir.file("r.db"), "sweeps", "--json"});
  auto rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["sweep"], "demo");
  EXPECT_EQ(rows[0]["candidates"], 6);
  EXPECT_EQ(rows[0]["done"], 4);
  EXPECT_EQ(rows[0]["failed"], 1);
  EXPECT_EQ(rows[0]["pending"], 1);
}

TEST(ReportCli, CandidatesFilteredByState) {
  TempDir dir;
  write_demo_db(dir.file("r.db"));
  CommandResult r = run_command({kReport, "--db", dir.file("r.db"), "candidates", "--sweep", "demo", "--state", "FAILED", "--csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(testing::count_lines(r.out), 2) << r.out;  // header + one row
  EXPECT_NE(r.out.find("\"CUDA out of memory, with, commas\""), std::string::npos) << "CSV quoting: " << r.out;
  r = run_command({kReport, "--db", dir.file("r.db"), "candidates", "--sweep", "demo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(6 rows)"), std::string::npos) << r.out;
}

TEST(ReportCli, ParetoFront) {
  TempDir dir;
  write_demo_db(dir.file("r.db"));
  CommandResult r = run_command({kReport, "--db", dir.file("r.db"), "pareto", "--sweep", "demo", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = nlohmann::json::parse(r.out);
  // (0.54, 13 GB, 1.2x) is dominated by (0.55, 12 GB, 1.25x); the other three are the front.
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_DOUBLE_EQ(rows[0]["task_acc_mean"].get<double>(), 0.62);
  EXPECT_EQ(rows[0]["method"], "original");
  EXPECT_DOUBLE_EQ(rows[2]["param_bytes"].get<double>(), 12e9);
  EXPECT_EQ(rows[2]["budget"], "layers:2");
  r = run_command({kReport, "--db", dir.file("r.db"), "pareto", "--sweep", "demo"});
  EXPECT_NE(r.out.find("task_acc_mean"), std::string::npos);
  EXPECT_NE(r.out.find("(3 rows)"), std::string::npos);
}

TEST(ReportCli, RouterStatistics) {
  TempDir dir;
  write_demo_db(dir.file("r.db"));
  CommandResult r = run_command({kReport, "--db", dir.file("r.db"), "router", "--sweep", "demo", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 6u) << r.out;
  // By layer, routed experts in order, the shared gate (-1) last; shares of the layer's routed tokens.
  EXPECT_EQ(rows[0]["layer"], 1);
  EXPECT_EQ(rows[0]["expert"], 0);
  EXPECT_DOUBLE_EQ(rows[0]["token_share"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(rows[2]["token_share"].get<double>(), 0.0);
  EXPECT_EQ(rows[3]["layer"], 2);
  EXPECT_DOUBLE_EQ(rows[4]["token_share"].get<double>(), 0.5);
  EXPECT_EQ(rows[5]["expert"], -1);
  EXPECT_TRUE(rows[5]["token_share"].is_null());
  EXPECT_DOUBLE_EQ(rows[5]["average_weight"].get<double>(), 0.9);
}

TEST(ReportCli, BadUsageIsOneLineAndExitTwo) {
  TempDir dir;
  std::string db = dir.file("r.db");
  write_demo_db(db);
  expect_usage_error(run_command({kReport, "sweeps"}), "cdmoe-report", "--db FILE is required");
  expect_usage_error(run_command({kReport, "--db", db}), "cdmoe-report", "a command is required");
  expect_usage_error(run_command({kReport, "--db", db, "frontier"}), "cdmoe-report", "unknown command 'frontier'");
  expect_usage_error(run_command({kReport, "--db", db, "pareto"}), "cdmoe-report", "'pareto' needs --sweep");
  expect_usage_error(run_command({kReport, "--db", db, "router"}), "cdmoe-report", "'router' needs --sweep");
  expect_usage_error(run_command({kReport, "--db", db, "pareto", "--sweep", "nope"}), "cdmoe-report",
                     "has no sweep named 'nope' (sweeps: demo)");
  expect_usage_error(run_command({kReport, "--db", db, "candidates", "--sweep", "demo", "--state", "done"}),
                     "cdmoe-report", "--state: state \"done\" is not one of");
  expect_usage_error(run_command({kReport, "--db", db, "sweeps", "--csv", "--json"}), "cdmoe-report", "exclude");
  expect_usage_error(run_command({kReport, "--db", db, "sweeps", "--colour"}), "cdmoe-report", "--colour");
  expect_usage_error(run_command({kReport, "--db", dir.file("missing.db"), "sweeps"}), "cdmoe-report", "does not exist");
  expect_usage_error(run_command({kReport, "--db", dir.path(), "sweeps"}), "cdmoe-report", "is a directory");
  CommandResult help = run_command({kReport, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("pareto --sweep S"), std::string::npos);
}

// The SQL shown in README.md runs against a database the store wrote.
TEST(Readme, QueriesRun) {
  std::string readme = testing::read_file(std::string(CDMOE_SOURCE_DIR) + "/README.md");
  size_t start = readme.find("```sql\n");
  ASSERT_NE(start, std::string::npos);
  start += 7;
  std::string sql = readme.substr(start, readme.find("```", start) - start);
  TempDir dir;
  write_demo_db(dir.file("r.db"), "deepseek-sr");
  int statements = 0;
  db::Connection c = db::open_database(dir.file("r.db"), db::OpenMode::kReadOnly);
  for (size_t at = 0; at < sql.size();) {
    size_t end = sql.find(';', at);
    if (end == std::string::npos) break;
    std::string statement = sql.substr(at, end - at);
    at = end + 1;
    db::Statement query(c, statement);  // throws on a syntax error or a missing column
    int rows = 0;
    while (query.step()) ++rows;
    EXPECT_GT(rows, 0) << statement;
    ++statements;
  }
  EXPECT_EQ(statements, 5);
}

TEST(DbCli, InitAndCheck) {
  TempDir dir;
  std::string db = dir.file("new.db");
  CommandResult r = run_command({kDbTool, "--db", db, "init"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("schema version"), std::string::npos);
  r = run_command({kDbTool, "--db", db, "check"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(": ok"), std::string::npos);
  expect_usage_error(run_command({kDbTool, "--db", db, "vacuum"}), "cdmoe-db", "unknown command 'vacuum'");
}

// Permission checks are meaningless for root, so as root the binary runs as user nobody.
CommandResult run_unprivileged(std::vector<std::string> argv) {
  if (geteuid() == 0) argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  return run_command(argv);
}

TEST(DbCli, UnwritableFileOrDirectoryIsRefusedUntouched) {
  if (geteuid() == 0 && access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "root without setpriv";
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  std::string db = dir.file("r.db");
  write_demo_db(db);
  std::string before = testing::read_file(db);
  chmod(db.c_str(), 0444);
  expect_usage_error(run_unprivileged({kDbTool, "--db", db, "init"}), "cdmoe-db", "is not writable (permission denied)");
  chmod(db.c_str(), 0666);
  chmod(dir.path().c_str(), 0555);
  expect_usage_error(run_unprivileged({kDbTool, "--db", db, "init"}), "cdmoe-db",
                     "directory '" + dir.path() + "' is not writable");
  chmod(dir.path().c_str(), 0755);
  EXPECT_EQ(testing::read_file(db), before);
}

}  // namespace
}  // namespace cdmoe
