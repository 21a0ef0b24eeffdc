// cdmoe-eval: evaluates a model (with a plan) on given inputs. Today: the debugging entry
// point that acceptance checks rely on (keep its interface):
//   cdmoe-eval --model DIR [--plan PLAN.json] --ids IDS.json --dump-logits OUT.safetensors
// IDS.json is a JSON array of equal-length arrays of token ids; OUT holds one F32 tensor
// `logits` [batch, seq, vocab]. --mask MASK.json (same shape, 1 token / 0 padding) is optional.
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "core/error.h"
#include "model/moe_model.h"
#include "model/safetensors.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

// A JSON array of equal-length arrays of integers, as a [B, T] int64 tensor.
at::Tensor read_matrix(const std::string& path, const char* what) {
  Json rows = read_json_file(path);
  if (!rows.is_array() || rows.empty()) throw_bad_input(path + ": expected a non-empty JSON array of " + what + " arrays");
  std::vector<int64_t> values;
  size_t width = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Json& row = rows[r];
    std::string at = path + ": row " + std::to_string(r);
    if (!row.is_array() || row.empty()) throw_bad_input(at + " is not a non-empty array");
    if (r == 0) width = row.size();
    if (row.size() != width) {
      throw_bad_input(at + " has " + std::to_string(row.size()) + " entries, row 0 has " + std::to_string(width));
    }
    for (const Json& value : row) {
      if (!value.is_number_integer()) throw_bad_input(at + " holds " + describe_json(value) + ", not an integer");
      values.push_back(value.get<int64_t>());
    }
  }
  return at::tensor(values, at::kLong).view({int64_t(rows.size()), int64_t(width)});
}

int eval_main(int argc, char** argv) {
  po::options_description options("usage: cdmoe-eval --model DIR [--plan PLAN.json] --ids IDS.json --dump-logits OUT\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "Hugging Face model directory (config.json + safetensors)")
      ("plan", po::value<std::string>(), "plan JSON (DESIGN.md §7); default: the original model")
      ("ids", po::value<std::string>(), "JSON array of equal-length arrays of token ids")
      ("mask", po::value<std::string>(), "optional JSON array like --ids: 1 token, 0 padding")
      ("dump-logits", po::value<std::string>(), "write the logits [batch, seq, vocab] here (safetensors, F32)")
      ("threads", po::value<int>()->default_value(0), "compute threads (0: all cores)");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  for (const char* required : {"model", "ids", "dump-logits"}) {
    if (!args.count(required)) throw_bad_input(std::string("--") + required + " is required (see --help)");
  }
  int threads = args["threads"].as<int>();
  if (threads < 0) throw_bad_input("--threads must be 0 or positive");
  if (threads > 0) at::set_num_threads(threads);

  // Every input is read and checked before any work and before anything is written.
  auto model = model::MoeModel::load(args["model"].as<std::string>());
  Plan plan;
  if (args.count("plan")) {
    std::string path = args["plan"].as<std::string>();
    plan = Plan::read_file(path);
    plan.validate(model->shape(), path);
  }
  at::Tensor ids = read_matrix(args["ids"].as<std::string>(), "token id");
  at::Tensor mask;
  if (args.count("mask")) {
    mask = read_matrix(args["mask"].as<std::string>(), "0/1");
    if (!mask.sizes().equals(ids.sizes())) throw_bad_input(args["mask"].as<std::string>() + ": shape differs from --ids");
  }
  at::Tensor logits = model->logits(ids, mask, plan).contiguous();
  model::write_safetensors(args["dump-logits"].as<std::string>(),
                           {{"logits", model::DType::kF32, logits.sizes().vec(), logits.data_ptr<float>()}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-eval", [&] { return eval_main(argc, argv); });
}
