// cdmoe-eval: evaluates a model (or an exported checkpoint) with a plan, as lm-evaluation-harness
// would, and prints every metric as a table or JSON:
//   cdmoe-eval --model DIR [--plan PLAN.json] [--tasks piqa,arc_easy,FILE.jsonl] [--ppl FILE]
//              [--calib FILE --divergence js-logits] [--speed] [--metrics NAMES] [--limit N] [--json]
// and the debugging entry point that acceptance checks rely on (keep its interface):
//   cdmoe-eval --model DIR [--plan PLAN.json] --ids IDS.json --dump-logits OUT.safetensors
// IDS.json is a JSON array of equal-length arrays of token ids; OUT holds one F32 tensor
// `logits` [batch, seq, vocab]. --mask MASK.json (same shape, 1 token / 0 padding) is optional.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/launch.h"
#include "apps/table_format.h"
#include "core/error.h"
#include "core/objectives.h"
#include "core/progress.h"
#include "eval/evaluation.h"
#include "eval/metrics.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/moe_model.h"
#include "model/residency.h"
#include "model/safetensors.h"
#include "model/weight_names.h"

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

// --plan FILE read and checked against the model; the original model without it.
Plan plan_option(const po::variables_map& args, const model::MoeModel& model) {
  if (!args.count("plan")) return Plan();
  std::string path = args["plan"].as<std::string>();
  Plan plan = Plan::read_file(path);
  plan.validate(model.shape(), path);
  return plan;
}

// --device and --dtype: where and in what the model computes (model/device.h; one process, so
// the first visible GPU); --residency and --device-memory-mb: which layers it holds
// (model/residency.h), decided from the checkpoint's headers before a weight is read.
std::unique_ptr<model::MoeModel> load_model(const po::variables_map& args) {
  std::string device = model::device_for_this_process(args["device"].as<std::string>(), 0);
  const at::ScalarType dtype = model::compute_dtype_named(model::compute_dtype_for(args["dtype"].as<std::string>(), device));
  const std::string dir = args["model"].as<std::string>();
  const int64_t limit_mb = checked_count(args["device-memory-mb"].as<int64_t>(), "--device-memory-mb", 0, 100'000'000);
  const model::ResidencyChoice choice =
      model::choose_residency(model::checkpoint_tensor_table(model::Checkpoint(dir)), int64_t(at::elementSize(dtype)),
                              args["residency"].as<std::string>(), limit_mb * 1'000'000, "--device-memory-mb");
  return model::MoeModel::load(dir, at::Device(device), dtype, choice.residency, choice.resident_layers);
}

std::string metrics_help() {
  std::string help = "comma-separated registered metrics to compute (default: every one whose inputs are given):";
  for (const eval::MetricDefinition& metric : eval::registered_metrics()) {
    help += " " + metric.name + " (" + metric.produces + ");";
  }
  help.pop_back();
  return help;
}

// Filled by the command line (add_speed_options).
eval::SpeedOptions speed_options;

int metrics_mode(const po::variables_map& args) {
  std::vector<std::string> metric_names;
  if (args.count("metrics")) {
    metric_names = split_commas(args["metrics"].as<std::string>());
    for (const std::string& name : metric_names) eval::find_metric(name);  // before anything is loaded
  }
  if (metric_names.empty() && !args.count("tasks") && !args.count("ppl") && !args.count("calib")) {
    throw_bad_input("nothing to evaluate: give --tasks, --ppl or --calib (or --ids with --dump-logits)");
  }
  if (args.count("speed") && !args.count("calib")) throw_bad_input("--speed times the plan on --calib; give --calib FILE");
  if (args.count("samples")) {
    if (!args.count("tasks")) throw_bad_input("--samples records task items; give --tasks");
    check_output_path(args["samples"].as<std::string>(), "--samples");
  }
  find_divergence(args["divergence"].as<std::string>(), "--divergence");
  const DivergenceMean divergence_mean = divergence_mean_named(args["divergence-mean"].as<std::string>(), "--divergence-mean");
  std::string model_dir = args["model"].as<std::string>();
  // Every input is read and checked before the first forward.
  auto model = load_model(args);
  Plan plan = plan_option(args, *model);
  std::string tokenizer_source = args.count("tokenizer") ? args["tokenizer"].as<std::string>() : model_dir;
  auto tokenizer = model::Tokenizer::load(tokenizer_source);
  model::check_tokenizer_fits(*tokenizer, model->shape().vocab_size, "tokenizer of " + tokenizer_source);
  eval::EvaluationRequest request;
  request.divergence = args["divergence"].as<std::string>();
  request.divergence_mean = divergence_mean;
  request.batch_size = checked_count(args["batch-size"].as<int64_t>(), "--batch-size", 1, int64_t(1) << 16);
  request.speed = args.count("speed") > 0;
  speed_options.validate();
  request.speed_options = speed_options;
  request.progress = args.count("progress") > 0 || Progress::stderr_is_tty();
  request.metrics = metric_names;
  if (args["limit"].as<int64_t>() < 0) throw_bad_input("--limit must be 0 (all items) or positive");
  if (args["calib-samples"].as<int64_t>() < 1) throw_bad_input("--calib-samples must be at least 1");
  request.cache_bytes = checked_count(args["cache-mb"].as<int64_t>(), "--cache-mb", 0, kMaxCacheMb) << 20;
  int64_t seq_len = args["seq-len"].as<int64_t>();
  if (seq_len > model->shape().max_position_embeddings) {
    throw_bad_input("--seq-len " + std::to_string(seq_len) + " exceeds the model's max_position_embeddings " +
                    std::to_string(model->shape().max_position_embeddings));
  }
  eval::CalibrationOptions text_options{args["calib-samples"].as<int64_t>(), seq_len, false, args["seed"].as<uint64_t>()};
  if (args.count("tasks")) {
    const char* env = std::getenv("CDMOE_BENCHMARKS_DIR");
    std::string benchmarks = args.count("benchmarks") ? args["benchmarks"].as<std::string>() : env ? env : "";
    for (const std::string& spec : split_commas(args["tasks"].as<std::string>())) {
      request.tasks.push_back(eval::load_task(spec, benchmarks, args["limit"].as<int64_t>()));
    }
    request.task_average = args["task-average"].as<std::string>();
    request.special_tokens = eval::request_special_tokens_named(args["special-tokens"].as<std::string>(), "--special-tokens");
    eval::check_task_average(request.task_average, request.tasks);
  }
  if (args.count("ppl")) request.held_out = eval::load_calibration(args["ppl"].as<std::string>(), *tokenizer, text_options);
  if (args.count("calib")) request.calibration = eval::load_calibration(args["calib"].as<std::string>(), *tokenizer, text_options);

  std::vector<eval::TaskSamples> samples;
  if (args.count("samples")) request.samples = &samples;
  std::vector<Metric> metrics = eval::evaluate(*model, *tokenizer, plan, request);  // refuses non-finite results
  if (args.count("samples")) {
    write_file_atomically(args["samples"].as<std::string>(), eval::samples_jsonl(request.tasks, samples), "--samples");
  }
  if (args.count("json")) {
    Json out = {{"model", model_dir},
              {"plan", plan.to_json()},
              {"plan_hash", plan.hash()},
              {"device", model->device().str()},
              {"dtype", model::compute_dtype_name(model->dtype())},
              {"metrics", Json::array()}};
    for (const Metric& m : metrics) out["metrics"].push_back({{"name", m.name}, {"value", m.value}, {"unit", m.unit}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  db::Table table{{"metric", "value", "unit"}, {}};
  for (const Metric& m : metrics) table.rows.push_back({m.name, m.value, m.unit});
  write_table(table, TableFormat::kAligned, std::cout);
  return 0;
}

int eval_main(int argc, char** argv) {
  po::options_description options("usage: cdmoe-eval --model DIR [--plan PLAN.json] --ids IDS.json --dump-logits OUT\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "Hugging Face model directory (config.json + safetensors)")
      ("plan", po::value<std::string>(), "plan JSON (ARCHITECTURE.md §7); default: the original model")
      ("ids", po::value<std::string>(), "JSON array of equal-length arrays of token ids")
      ("mask", po::value<std::string>(), "optional JSON array like --ids: 1 token, 0 padding")
      ("dump-logits", po::value<std::string>(), "write the logits [batch, seq, vocab] here (safetensors, F32)")
      ("threads", po::value<int>()->default_value(0), "compute threads (0: all cores)")
      ("residency", po::value<std::string>()->default_value("full"),
       "full (every layer held), layers (one decoder layer at a time, read from the checkpoint when used: the same "
       "results, for a model larger than memory), or auto (layers when the weights exceed --device-memory-mb)")
      ("device-memory-mb", po::value<int64_t>()->default_value(0),
       "weights the device may hold, in MB (10^6 bytes; 0: no limit); under layers, as many layers as fit are kept")
      ("device", po::value<std::string>()->default_value("auto"), "auto, cpu or cuda (auto: the first visible GPU, else the CPU)")
      ("dtype", po::value<std::string>()->default_value("auto"), "compute dtype: auto (bfloat16 on CUDA, float32 on the CPU), float32 or bfloat16")
      ("tokenizer", po::value<std::string>(), "directory or file of tokenizer.json (default: --model)")
      ("tasks", po::value<std::string>(), "comma-separated: arc_challenge, boolq, piqa, rte, openbookqa, winogrande, mmlu, hellaswag, arc_easy (from --benchmarks), FILE.jsonl ({context, choices, gold})")
      ("benchmarks", po::value<std::string>(), "folder with the tasks' files, README.md \"The paper's eight tasks\" (default: $CDMOE_BENCHMARKS_DIR)")
      ("task-average", po::value<std::string>()->default_value("acc"), "which metric of each task enters task_acc_mean: acc, acc_norm (where lm-eval reports it) or TASK=METRIC,... over acc")
      ("special-tokens", po::value<std::string>()->default_value("none"), eval::kRequestSpecialTokensHelp)
      ("limit", po::value<int64_t>()->default_value(0), "first N items of each task (0: all)")
      ("ppl", po::value<std::string>(), "held-out text (JSONL {\"text\"} or plain) for perplexity")
      ("calib", po::value<std::string>(), "calibration text for the divergence from the original (and --speed)")
      ("divergence", po::value<std::string>()->default_value("js-logits"), divergence_names().c_str())
      ("divergence-mean", po::value<std::string>()->default_value("token"),
       "the divergence's mean: token (over all calibration tokens) or sequence (of each sequence's mean, as the CD-MoE reference)")
      ("cache-mb", po::value<int64_t>()->default_value(4096), "layer cache cap for the divergence, MiB")
      ("calib-samples", po::value<int64_t>()->default_value(100), "documents of --calib / --ppl used")
      ("seq-len", po::value<int64_t>()->default_value(256), "tokens per document (longer ones are truncated)")
      ("seed", po::value<uint64_t>()->default_value(0), "which documents, when a file has more")
      ("batch-size", po::value<int64_t>()->default_value(8), "sequences per forward")
      ("speed", "also time the plan against the original on --calib (interleaved pairs, see --speed-ci)")
      ("metrics", po::value<std::string>(), metrics_help().c_str())
      ("samples", po::value<std::string>(), "also write every task item's log-likelihoods and outcome here (JSON lines; compare two with cdmoe-paired)")
      ("json", "print JSON instead of a table")
      ("progress", "show progress on stderr even when it is not a terminal");
  add_speed_options(options, speed_options);
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("model")) throw_bad_input("--model is required (see --help)");
  int threads = checked_threads(args["threads"].as<int>(), "--threads");
  if (threads > 0) at::set_num_threads(threads);
  if (!args.count("ids") && !args.count("dump-logits")) return metrics_mode(args);
  for (const char* required : {"ids", "dump-logits"}) {
    if (!args.count(required)) throw_bad_input(std::string("--") + required + " is required with --ids/--dump-logits");
  }

  // Every input is read and checked before any work and before anything is written.
  auto model = load_model(args);
  Plan plan = plan_option(args, *model);
  const std::string ids_path = args["ids"].as<std::string>();
  at::Tensor ids = read_matrix(ids_path, "token id");
  const int64_t vocab = model->shape().vocab_size;
  for (int64_t r = 0; r < ids.size(0); ++r) {
    for (int64_t t = 0; t < ids.size(1); ++t) {
      int64_t id = ids[r][t].item<int64_t>();
      if (id < 0 || id >= vocab) {
        throw_bad_input(ids_path + ": row " + std::to_string(r) + ", position " + std::to_string(t) + ": token id " +
                        std::to_string(id) + " is outside the model's vocabulary 0.." + std::to_string(vocab - 1));
      }
    }
  }
  at::Tensor mask;
  if (args.count("mask")) {
    mask = read_matrix(args["mask"].as<std::string>(), "0/1");
    if (!mask.sizes().equals(ids.sizes())) throw_bad_input(args["mask"].as<std::string>() + ": shape differs from --ids");
  }
  at::Tensor logits = model->logits(ids, mask, plan).cpu().contiguous();
  if (!logits.isfinite().all().item<bool>()) {
    throw_runtime("the logits under this plan are not finite (inf or NaN); nothing written to " +
                  args["dump-logits"].as<std::string>());
  }
  model::write_safetensors(args["dump-logits"].as<std::string>(),
                           {{"logits", model::DType::kF32, logits.sizes().vec(), logits.data_ptr<float>()}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  model::flush_denormals_unless_kept();
  return run_cli("cdmoe-eval", [&] { return eval_main(argc, argv); });
}
