// cdmoe-import-reference: the reference implementation's published search artifacts as a plans
// file for `cdmoe-sweep --strategy plans` (search/reference_import.h has the formats).
//   cdmoe-import-reference --model DIR --layer-order ORDER.json --k K [--experts EXPERTS.json
//     --dynamic-weights dynamic_weight.json] [--budgets layers:1-15] [--method NAME] --out PLANS.jsonl
// Each line: {"name", "method", "budget", "plan"}; the sweep records them under that method
// and budget, beside its own methods' points at the same layers:N. Written atomically.
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "core/error.h"
#include "model/family.h"
#include "search/budget.h"
#include "search/reference_import.h"
#include "search/strategy.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

int import_main(int argc, char** argv) {
  po::options_description options(
      "usage: cdmoe-import-reference --model DIR --layer-order ORDER.json --k K [--experts FILE --dynamic-weights FILE] "
      "--out PLANS.jsonl\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "the model the artifacts were made for (its config.json maps MoE-relative layers)")
      ("layer-order", po::value<std::string>(), "the reference's greedy layer order, e.g. layer_idx_order.e6.json")
      ("k", po::value<int>(), "routed experts kept per condensed layer (0: CD-MoE-S, shared only)")
      ("experts", po::value<std::string>(), "the reference's greedy expert file {\"layer\": [experts]} (needed for k > 0)")
      ("dynamic-weights", po::value<std::string>(), "the reference's dynamic_weight.json (needed for k > 0)")
      ("budgets", po::value<std::string>(), "layers:N budgets to write, e.g. layers:1-15 (default: every prefix of the order)")
      ("method", po::value<std::string>(), "method name in the results (default: reference_s or reference_sr_kK)")
      ("out", po::value<std::string>(), "plans file to write (JSONL)");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  for (const char* required : {"model", "layer-order", "k", "out"}) {
    if (!args.count(required)) throw_bad_input(std::string("--") + required + " is required (see --help)");
  }
  int k = args["k"].as<int>();
  if (k > 0 && (!args.count("experts") || !args.count("dynamic-weights"))) {
    throw_bad_input("--k " + std::to_string(k) + " needs --experts and --dynamic-weights (which experts, with which weights)");
  }
  ModelShape shape = model::read_model_shape(args["model"].as<std::string>());
  search::ReferenceArtifacts artifacts;
  artifacts.layer_order_file = args["layer-order"].as<std::string>();
  artifacts.layer_order = search::read_reference_layer_order(artifacts.layer_order_file);
  if (k > 0) {
    artifacts.experts_file = args["experts"].as<std::string>();
    artifacts.weights_file = args["dynamic-weights"].as<std::string>();
    artifacts.expert_order = search::read_reference_experts(artifacts.experts_file);
    artifacts.mean_weights = search::read_reference_weights(artifacts.weights_file);
  }
  std::vector<int> counts;
  if (args.count("budgets")) {
    for (const search::Budget& budget : search::parse_budgets(args["budgets"].as<std::string>(), "--budgets")) {
      if (budget.kind != search::Budget::Kind::kLayers) throw_bad_input("--budgets: " + budget.text + " is not layers:N (the reference's curve is in layers)");
      counts.push_back(int(budget.value));
    }
  } else {
    for (size_t n = 1; n <= artifacts.layer_order.size(); ++n) counts.push_back(int(n));
  }
  std::string method = args.count("method") ? args["method"].as<std::string>() : k == 0 ? "reference_s" : "reference_sr_k" + std::to_string(k);
  search::check_method_name(method, "--method");  // here, not only when a sweep reads the file
  std::string lines;
  for (const search::ReferencePlan& p : search::reference_plans(shape, artifacts, k, counts, method)) {
    lines += Json{{"name", p.method + " " + p.budget}, {"method", p.method}, {"budget", p.budget}, {"plan", p.plan.to_json()}}.dump() + "\n";
  }
  write_file_atomically(args["out"].as<std::string>(), lines, "--out");
  std::cout << "wrote " << counts.size() << " plans (" << method << ", layers " << counts.front() << ".." << counts.back() << ") to "
            << args["out"].as<std::string>() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-import-reference", [&] { return import_main(argc, argv); });
}
