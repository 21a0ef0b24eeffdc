// cdmoe-report html and plot, end to end: a real sweep (cdmoe-sweep on the suite's tiny model),
// the page rendered by a real headless browser (Debian's chromium) from its file, its points
// counted and mapped back to the database's values, a screenshot kept as a test artifact;
// escaping of names from the database; unfinished sweeps; bad input.
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "db/database.h"
#include "db/store.h"
#include "tests/apps/sweep_fixture.h"
#include "tests/db/db_test_util.h"
#include "tests/report/svg_points.h"

namespace cdmoe {
namespace {

using testing::CommandResult;
using testing::SweepCli;
using testing::count_rows;
using testing::run_command;
namespace fs = std::filesystem;

const std::string kReport = std::string(CDMOE_BIN_DIR) + "/cdmoe-report";
const std::string kChromium = "/usr/bin/chromium";

// Chromium as the probe of this machine runs it: headless, no network, a fresh profile.
CommandResult chromium(const std::string& profile, std::vector<std::string> args) {
  std::vector<std::string> argv = {kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                                   "--user-data-dir=" + profile};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// The <svg class="chart"> elements of a document, in order.
std::vector<std::string> charts_of(const std::string& document) {
  std::vector<std::string> out;
  for (size_t at = document.find("<svg"); at != std::string::npos; at = document.find("<svg", at + 1)) {
    size_t end = document.find("</svg>", at);
    std::string svg = document.substr(at, end - at);
    if (svg.find("class=\"chart\"") != std::string::npos) out.push_back(svg);
  }
  return out;
}

double metric(const std::string& db, int64_t candidate, const std::string& name) {
  db::Connection c = db::open_database(db, db::OpenMode::kReadOnly);
  db::Statement s(c, "SELECT value FROM metrics WHERE candidate_id = ? AND name = ?");
  s.bind(1, candidate).bind(2, name);
  return s.step() ? s.column_double(0) : NAN;
}

TEST_F(SweepCli, TheHtmlReportRendersInABrowserWithEveryCandidateWhereItsValuesSay) {
  std::string db = file("report.db");
  auto args = sweep_args(db, "s");
  args.insert(args.end(), {"--strategy", "cdmoe,drop", "--ppl", file("calib.txt")});
  ASSERT_EQ(run_command(local(args)).exit_code, 0);
  std::string page = file("report.html");
  CommandResult made = run_command({kReport, "--db", db, "html", "--sweep", "s", "--out", page});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.err.find("wrote " + page + " ("), std::string::npos) << made.err;
  std::string html = testing::read_file(page);
  EXPECT_EQ(html.find("<script"), std::string::npos) << "no script at all";
  for (const char* outside : {"http://", "https://", "src=", "<link", "@import"}) {
    if (std::string(outside) == "http://") continue;  // the SVG namespace URI is a name, not a fetch
    EXPECT_EQ(html.find(outside), std::string::npos) << "self-contained: " << outside;
  }

  CommandResult dom = chromium(file("profile"), {"--dump-dom", "file://" + page});
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_EQ(dom.err.find(":CONSOLE("), std::string::npos) << "the console stays silent: " << dom.err;
  std::vector<std::string> charts = charts_of(dom.out);
  ASSERT_GE(charts.size(), 4u) << "accuracy/memory, accuracy/speed, perplexity and divergence curves";

  // Chart 1: accuracy against parameters; one point per DONE full evaluation, per method.
  double misplaced = 1;
  std::vector<testing::SvgPoint> points = testing::read_svg_points(charts[0], &misplaced);
  EXPECT_LT(misplaced, 0.002) << "drawn within a pixel of where the values say";
  std::map<std::string, int64_t> drawn;
  for (const testing::SvgPoint& p : points) {
    ++drawn[p.series];
    EXPECT_DOUBLE_EQ(p.x, metric(db, p.candidate, "param_ratio")) << p.candidate;
    EXPECT_DOUBLE_EQ(p.y, metric(db, p.candidate, "task_acc_mean")) << p.candidate;
  }
  db::Connection c = db::open_database(db, db::OpenMode::kReadOnly);
  db::Statement expected(c, "SELECT method, count(*) FROM results WHERE sweep = 's' AND stage = 'full_eval' "
                            "AND state = 'DONE' AND task_acc_mean IS NOT NULL AND param_ratio IS NOT NULL GROUP BY method");
  std::map<std::string, int64_t> in_db;
  while (expected.step()) in_db[expected.column_text(0)] = expected.column_int(1);
  EXPECT_EQ(drawn, in_db);
  EXPECT_EQ(in_db.size(), 4u) << "original, cdmoe_s, cdmoe_sr_k2, drop";
  EXPECT_GT(count_rows(db, "SELECT count(*) FROM pareto"), 0);
  EXPECT_NE(charts[0].find("class=\"point highlighted\""), std::string::npos) << "the front is ringed";
  // Every row of the front says how to ship it.
  const int64_t best = count_rows(db, "SELECT p.candidate_id FROM pareto p ORDER BY p.accuracy DESC LIMIT 1");
  EXPECT_NE(dom.out.find("cdmoe-export --model " + model() + " --db " + db + " --candidate " + std::to_string(best) + " --out s-" +
                         std::to_string(best) + "-"), std::string::npos);
  size_t commands = 0;
  for (size_t at = dom.out.find("class=\"export\""); at != std::string::npos; at = dom.out.find("class=\"export\"", at + 1)) ++commands;
  EXPECT_EQ(int64_t(commands), count_rows(db, "SELECT count(*) FROM pareto WHERE sweep = 's'"));

  // The search and provenance, from the database alone.
  EXPECT_NE(dom.out.find("class=\"expert-order\""), std::string::npos);
  EXPECT_NE(dom.out.find("class=\"layer-order\""), std::string::npos);
  EXPECT_NE(dom.out.find("class=\"heatmap\""), std::string::npos);
  EXPECT_NE(dom.out.find("model sha256"), std::string::npos);
  EXPECT_EQ(dom.out.find("not finished"), std::string::npos) << "the sweep is DONE";

  // A screenshot for people: kept beside the build as a test artifact.
  fs::create_directories(CDMOE_ARTIFACT_DIR);
  std::string png = std::string(CDMOE_ARTIFACT_DIR) + "/report.png";
  fs::remove(png);
  CommandResult shot = chromium(file("profile"), {"--window-size=1400,2400", "--screenshot=" + png, "file://" + page});
  ASSERT_EQ(shot.exit_code, 0) << shot.err;
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 20000u) << "a page, not a blank";

  // plot: the same chart as a standalone SVG.
  CommandResult svg = run_command({kReport, "--db", db, "plot", "--sweep", "s", "--x", "param_ratio", "--y", "task_acc_mean"});
  ASSERT_EQ(svg.exit_code, 0) << svg.err;
  EXPECT_EQ(svg.out.rfind("<?xml", 0), 0u);
  EXPECT_EQ(testing::read_svg_points(svg.out, &misplaced).size(), points.size());
}

// The fine-tuned points belong in every chart of full evaluations beside the untuned ones (they
// were missing from all of them while leading the Pareto table): for every metric chart of the
// page ("Y against X"), the points drawn are exactly the DONE full evaluations and fine-tunes
// with both values, each at its values, every fine-tuned point joined to its parent's; the loss
// curves show each run's steps and their smoothed mean.
TEST_F(SweepCli, EveryDoneCandidateOfEveryMethodIsInEveryChartItBelongsTo) {
  std::string db = file("finetuned.db");
  auto args = sweep_args(db, "s");
  args.insert(args.end(), {"--ppl", file("calib.txt"), "--finetune-data", file("calib.txt"), "--finetune-steps", "4",
                           "--finetune-batch-size", "2", "--finetune-seq-len", "16"});
  CommandResult swept = run_command(local(args));
  ASSERT_EQ(swept.exit_code, 0) << swept.err;
  ASSERT_GE(count_rows(db, "SELECT count(*) FROM candidates WHERE stage = 'finetune' AND state = 'DONE'"), 2);
  std::string page = file("finetuned.html");
  ASSERT_EQ(run_command({kReport, "--db", db, "html", "--sweep", "s", "--out", page}).exit_code, 0);
  const std::string html = testing::read_file(page);
  db::Connection c = db::open_database(db, db::OpenMode::kReadOnly);
  auto value_of = [&](int64_t candidate, const std::string& name, double& out) {
    if (name == "condensed_layers") {
      db::Statement plan(c, "SELECT (SELECT count(*) FROM json_each(plan_json, '$.layers')) FROM candidates WHERE id = ?");
      plan.bind(1, candidate);
      if (!plan.step()) return false;
      out = double(plan.column_int(0));
      return true;
    }
    out = metric(db, candidate, name);
    return std::isfinite(out);
  };
  int metric_charts = 0;
  for (const std::string& chart : charts_of(html)) {
    std::smatch title;
    if (!std::regex_search(chart, title, std::regex("<title>([a-z0-9_]+) against ([a-z0-9_]+)</title>"))) continue;
    const std::string y = title[1], x = title[2];
    ++metric_charts;
    SCOPED_TRACE(y + " against " + x);
    double misplaced = 1;
    std::set<int64_t> drawn;
    for (const testing::SvgPoint& p : testing::read_svg_points(chart, &misplaced)) {
      drawn.insert(p.candidate);
      double want_x = NAN, want_y = NAN;
      ASSERT_TRUE(value_of(p.candidate, x, want_x) && value_of(p.candidate, y, want_y)) << p.candidate;
      EXPECT_DOUBLE_EQ(p.x, want_x) << p.candidate;
      EXPECT_DOUBLE_EQ(p.y, want_y) << p.candidate;
    }
    EXPECT_LT(misplaced, 0.002);
    std::set<int64_t> expected, finetuned;
    db::Statement done(c, "SELECT id, stage, parent_id FROM candidates WHERE state = 'DONE' AND stage IN ('full_eval', 'finetune', 'train')");
    std::map<int64_t, int64_t> parent_of;
    while (done.step()) {
      double vx = NAN, vy = NAN;
      if (!value_of(done.column_int(0), x, vx) || !value_of(done.column_int(0), y, vy)) continue;
      expected.insert(done.column_int(0));
      if (done.column_text(1) != "full_eval") parent_of[done.column_int(0)] = done.column_int(2);
    }
    EXPECT_EQ(drawn, expected);
    for (const auto& [child, parent] : parent_of) {
      if (!expected.count(parent)) continue;
      EXPECT_NE(chart.find("data-from=\"" + std::to_string(parent) + "\" data-to=\"" + std::to_string(child) + "\""), std::string::npos)
          << "fine-tuned candidate " << child << " is joined to its parent " << parent;
    }
  }
  EXPECT_GE(metric_charts, 4) << "accuracy against memory and speed, perplexity and divergence against layers";
  EXPECT_NE(html.find("(smoothed)"), std::string::npos) << "the loss curves' smoothed mean";
  EXPECT_NE(html.find("(steps)"), std::string::npos) << "and their raw steps";
}

TEST_F(SweepCli, NamesFromTheDatabaseAreEscapedAndUnfinishedSweepsSaySo) {
  // A sweep name that is markup, and a sweep with no full evaluation: text on the page.
  std::string db = file("hostile.db");
  auto args = sweep_args(db, "<script>alert(1)</script>");
  args.push_back("--no-full-eval");
  ASSERT_EQ(run_command(local(args)).exit_code, 0);
  {
    db::Store store(db);  // a second sweep still RUNNING, as one being written
    int64_t id = store.create_sweep(testing::test_sweep("running"));
    store.add_candidates(id, testing::numbered_candidates(0, 3));
  }
  std::string page = file("hostile.html");
  CommandResult made = run_command({kReport, "--db", db, "html", "--sweep", "<script>alert(1)</script>", "--sweep",
                                    "running", "--out", page});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  CommandResult dom = chromium(file("profile2"), {"--dump-dom", "file://" + page});
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_EQ(dom.out.find("<script"), std::string::npos) << "no script element came to life";
  EXPECT_NE(dom.out.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos) << "the name is shown as text";
  EXPECT_EQ(dom.err.find(":CONSOLE("), std::string::npos) << dom.err;
  EXPECT_NE(dom.out.find("has no full evaluations yet"), std::string::npos);
  EXPECT_NE(dom.out.find("Sweep running is RUNNING, not finished"), std::string::npos);
  EXPECT_NE(dom.out.find("no full evaluation with param_ratio and task_acc_mean yet"), std::string::npos);
}

TEST_F(SweepCli, ReportBadInputIsOneLineExitTwoAndWritesNothing) {
  std::string db = file("bad_report.db");
  {
    db::Store store(db);
    store.create_sweep(testing::test_sweep("s"));
  }
  auto refused = [&](std::vector<std::string> args, const std::string& text) {
    args.insert(args.begin(), {kReport, "--db", db});
    CommandResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
  };
  refused({"html", "--sweep", "nope", "--out", file("x.html")}, "has no sweep named 'nope' (sweeps: s)");
  refused({"html", "--out", file("x.html")}, "'html' needs --sweep NAME");
  refused({"html", "--sweep", "s", "--out", file("missing/x.html")}, "--out '" + file("missing/x.html") + "': directory");
  refused({"html", "--sweep", "s", "--out", file("")}, "is a directory");
  refused({"plot", "--sweep", "s", "--format", "png"}, "--format \"png\" is not supported");
  // A metric no sweep has drew an empty chart and exited 0: refused, naming the ones there are.
  refused({"plot", "--sweep", "s", "--x", "nosuch", "--y", "task_acc_mean", "--out", file("x.svg")},
          "--x \"nosuch\" is not a metric of these sweeps (metrics: condensed_layers");
  EXPECT_FALSE(fs::exists(file("x.svg")));
  refused({"pareto", "--sweep", "s", "--sweep", "t"}, "'pareto' takes one --sweep NAME");
  EXPECT_FALSE(fs::exists(file("x.html")));
  for (const auto& entry : fs::directory_iterator(dir_->path())) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << "a partial file was left: " << entry.path();
  }
}

}  // namespace
}  // namespace cdmoe
