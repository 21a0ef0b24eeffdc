// cdmoe-report: reads a results database (never writes it) and prints sweeps, candidates, a
// sweep's Pareto front or its router statistics as an aligned table, CSV or JSON; or draws
// the sweep report as one self-contained HTML page (`html`), or one chart as SVG (`plot`).
// Safe while a sweep is writing.
#include <algorithm>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>

#include <boost/program_options.hpp>

#include "apps/cli.h"
#include "apps/table_format.h"
#include "core/build_info.h"
#include "core/error.h"
#include "db/database.h"
#include "db/report_queries.h"
#include "db/sweep_snapshot.h"
#include "report/html_report.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

constexpr const char* kUsage =
    "usage: cdmoe-report --db FILE COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  sweeps                          every sweep with candidate counts by state\n"
    "  candidates --sweep S [--state X] a sweep's candidates (X: WAITING RUNNING DONE FAILED PREEMPTED)\n"
    "  pareto --sweep S                a sweep's non-dominated candidates (accuracy, memory, speed)\n"
    "  router --sweep S                the original model's router statistics per layer and expert\n"
    "  html --sweep S [--sweep S2 ...] [--out report.html]\n"
    "                                  the sweep report: one self-contained HTML page (charts, search, provenance)\n"
    "  plot --sweep S --x METRIC --y METRIC [--format svg] [--out FILE]\n"
    "                                  one chart of the full evaluations as a standalone SVG (stdout without --out)\n"
    "\n"
    "options";

int report_main(int argc, char** argv) {
  po::options_description options(kUsage);
  options.add_options()
      ("help,h", "print this help")
      ("db", po::value<std::string>(), "results database (SQLite) to read")
      ("sweep", po::value<std::vector<std::string>>()->composing(), "sweep name (html: repeatable, drawn side by side)")
      ("out", po::value<std::string>(), "file to write (html: default report.html; plot: default stdout)")
      ("x", po::value<std::string>()->default_value("param_ratio"), "plot: x metric (or condensed_layers)")
      ("y", po::value<std::string>()->default_value("task_acc_mean"), "plot: y metric")
      ("format", po::value<std::string>()->default_value("svg"), "plot: output format (svg)")
      ("state", po::value<std::string>(), "only candidates in this state (candidates)")
      ("csv", "print CSV (RFC 4180, full precision) instead of a table")
      ("json", "print a JSON array of row objects instead of a table");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/true);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("db")) throw_bad_input("--db FILE is required (see --help)");
  if (!args.count("command")) throw_bad_input("a command is required: sweeps, candidates, pareto, router, html or plot (see --help)");
  if (args.count("csv") && args.count("json")) throw_bad_input("--csv and --json exclude each other");
  TableFormat format = args.count("csv") ? TableFormat::kCsv : args.count("json") ? TableFormat::kJson
                                                                                 : TableFormat::kAligned;
  std::string command = args["command"].as<std::string>();
  std::vector<std::string> sweeps = args.count("sweep") ? args["sweep"].as<std::vector<std::string>>() : std::vector<std::string>{};
  auto require_sweep = [&]() {
    if (sweeps.empty()) throw_bad_input("'" + command + "' needs --sweep NAME");
    if (sweeps.size() > 1) throw_bad_input("'" + command + "' takes one --sweep NAME (html takes several)");
    return sweeps.front();
  };
  // Validate the whole command line before touching the database.
  std::optional<CandidateState> state;
  if (args.count("state")) state = parse_candidate_state(args["state"].as<std::string>(), "--state");
  const std::vector<std::string> commands = {"sweeps", "candidates", "pareto", "router", "html", "plot"};
  if (std::find(commands.begin(), commands.end(), command) == commands.end()) {
    throw_bad_input("unknown command '" + command + "' (commands: sweeps, candidates, pareto, router, html, plot)");
  }
  const std::string db_path = args["db"].as<std::string>();
  if (command == "html" || command == "plot") {
    if (sweeps.empty()) throw_bad_input("'" + command + "' needs --sweep NAME");
    if (command == "plot" && args["format"].as<std::string>() != "svg") {
      throw_bad_input("--format \"" + args["format"].as<std::string>() + "\" is not supported (formats: svg)");
    }
    db::Connection connection = db::open_database(db_path, db::OpenMode::kReadOnly);
    std::vector<db::SweepSnapshot> snapshots;
    for (const std::string& name : sweeps) snapshots.push_back(db::read_sweep_snapshot(connection, name));
    if (command == "plot") {
      std::string svg = report::render_metric_svg(snapshots, args["x"].as<std::string>(), args["y"].as<std::string>());
      if (args.count("out")) write_file_atomically(args["out"].as<std::string>(), svg, "--out");
      else std::cout << svg;
      return 0;
    }
    report::PageInfo page{db_path, utc_now(), std::string("cdmoe-report (git ") + git_commit() + ")"};
    std::string out = args.count("out") ? args["out"].as<std::string>() : "report.html";
    std::string html = report::render_html_report(snapshots, page);
    write_file_atomically(out, html, "--out");
    std::cerr << "cdmoe-report: wrote " << out << " (" << (html.size() + 1023) / 1024 << " KiB)\n";
    return 0;
  }
  std::string sweep = command == "sweeps" ? "" : require_sweep();

  db::Connection connection = db::open_database(db_path, db::OpenMode::kReadOnly);
  db::Table table = command == "sweeps"       ? db::sweeps_table(connection)
                    : command == "candidates" ? db::candidates_table(connection, sweep, state)
                    : command == "router"     ? db::router_table(connection, sweep)
                                              : db::pareto_table(connection, sweep);
  write_table(table, format, std::cout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-report", [&] { return report_main(argc, argv); });
}
