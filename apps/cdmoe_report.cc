// cdmoe-report: reads a results database (never writes it) and prints sweeps, candidates, a
// sweep's Pareto front or its router statistics as an aligned table, CSV or JSON. Safe while a sweep is writing.
#include <iostream>
#include <optional>
#include <string>

#include <boost/program_options.hpp>

#include "apps/cli.h"
#include "apps/table_format.h"
#include "core/error.h"
#include "db/database.h"
#include "db/report_queries.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

constexpr const char* kUsage =
    "usage: cdmoe-report --db FILE COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  sweeps                          every sweep with candidate counts by state\n"
    "  candidates --sweep S [--state X] a sweep's candidates (X: WAITING RUNNING DONE FAILED PREEMPTED)\n"
    "  pareto --sweep S                a sweep's non-dominated candidates (accuracy, memory, speed)\n"
    "  router --sweep S                the original model's router statistics per layer and expert\n"
    "\n"
    "options";

int report_main(int argc, char** argv) {
  po::options_description options(kUsage);
  options.add_options()
      ("help,h", "print this help")
      ("db", po::value<std::string>(), "results database (SQLite) to read")
      ("sweep", po::value<std::string>(), "sweep name (candidates, pareto, router)")
      ("state", po::value<std::string>(), "only candidates in this state (candidates)")
      ("csv", "print CSV (RFC 4180, full precision) instead of a table")
      ("json", "print a JSON array of row objects instead of a table");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/true);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("db")) throw_bad_input("--db FILE is required (see --help)");
  if (!args.count("command")) throw_bad_input("a command is required: sweeps, candidates, pareto or router (see --help)");
  if (args.count("csv") && args.count("json")) throw_bad_input("--csv and --json exclude each other");
  TableFormat format = args.count("csv") ? TableFormat::kCsv : args.count("json") ? TableFormat::kJson
                                                                                 : TableFormat::kAligned;
  std::string command = args["command"].as<std::string>();
  auto require_sweep = [&]() {
    if (!args.count("sweep")) throw_bad_input("'" + command + "' needs --sweep NAME");
    return args["sweep"].as<std::string>();
  };
  // Validate the whole command line before touching the database.
  std::optional<CandidateState> state;
  if (args.count("state")) state = parse_candidate_state(args["state"].as<std::string>(), "--state");
  if (command != "sweeps" && command != "candidates" && command != "pareto" && command != "router") {
    throw_bad_input("unknown command '" + command + "' (commands: sweeps, candidates, pareto, router)");
  }
  std::string sweep = command == "sweeps" ? "" : require_sweep();

  db::Connection connection = db::open_database(args["db"].as<std::string>(), db::OpenMode::kReadOnly);
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
