// cdmoe-paired: compares two evaluations of the same task items item by item (the --samples files
// of two cdmoe-eval runs, e.g. a condensed and a dropped plan): per task, B's accuracy minus A's
// with the standard error of the paired difference (eval/paired_accuracy.h), its 95% interval,
// and how many items only A or only B gets right. Reads only; writes nothing.
#include <cmath>
#include <iostream>

#include <boost/program_options.hpp>

#include "apps/cli.h"
#include "apps/table_format.h"
#include "core/error.h"
#include "eval/paired_accuracy.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

int paired_main(int argc, char** argv) {
  po::options_description options(
      "usage: cdmoe-paired --a A.jsonl --b B.jsonl [--metric acc|acc_norm] [--csv | --json]\n"
      "  A and B: cdmoe-eval --samples files of the same task items; difference = B - A\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("a", po::value<std::string>(), "samples file of evaluation A (cdmoe-eval --samples)")
      ("b", po::value<std::string>(), "samples file of evaluation B, the same items")
      ("metric", po::value<std::string>()->default_value("acc"), "acc or acc_norm (where the task reports it)")
      ("csv", "print CSV (full precision) instead of a table")
      ("json", "print JSON instead of a table");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  for (const char* required : {"a", "b"}) {
    if (!args.count(required)) throw_bad_input(std::string("--") + required + " is required (see --help)");
  }
  std::string a = args["a"].as<std::string>(), b = args["b"].as<std::string>();
  std::vector<eval::PairedDifference> rows =
      eval::compare_samples(eval::read_samples(a), a, eval::read_samples(b), b, args["metric"].as<std::string>());
  db::Table table{{"task", "items", "acc_a", "acc_b", "difference", "stderr_paired", "z", "ci_low", "ci_high", "only_a",
                   "only_b", "stderr_unpaired"},
                  {}};
  for (const eval::PairedDifference& d : rows) {
    double z = d.stderr_paired > 0 ? d.difference / d.stderr_paired : NAN;
    table.rows.push_back({d.task, d.items, d.acc_a, d.acc_b, d.difference, d.stderr_paired, z,
                          d.difference - 1.96 * d.stderr_paired, d.difference + 1.96 * d.stderr_paired, d.only_a,
                          d.only_b, d.stderr_unpaired});
  }
  write_table(table, args.count("json") ? TableFormat::kJson : args.count("csv") ? TableFormat::kCsv : TableFormat::kAligned,
              std::cout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_cli("cdmoe-paired", [&] { return paired_main(argc, argv); }); }
