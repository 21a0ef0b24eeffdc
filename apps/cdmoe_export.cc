// cdmoe-export: writes a condensed model (a plan, or a candidate of a results database, its
// fine-tuned tensors included) as a checkpoint that loads on its own.
//   cdmoe-export --model DIR (--plan PLAN.json | --db FILE --candidate ID) --out DIR2
//                [--format auto|transformers|cdmoe] [--dtype float32|bfloat16|float16] [--max-shard-mb N]
// --format transformers: a stock transformers checkpoint (model/stock_export.h), refused in one
// line where the plan is not expressible; cdmoe: the source's config.json with the plan in a
// "cdmoe" block (every family and plan; loads with cdmoe); auto (the default): transformers
// where expressible, else cdmoe, saying so. DIR2 also gets the tokenizer files and a model card
// README.md. Written to a temporary directory renamed into place at the end: DIR2 is complete
// or absent, never half-written; an existing DIR2 is never overwritten.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/model_card.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/param_count.h"
#include "db/database.h"
#include "db/report_queries.h"
#include "db/store.h"
#include "finetune/trained_tensors.h"
#include "model/checkpoint.h"
#include "model/moe_model.h"
#include "model/hf_export.h"
#include "model/stock_export.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace cdmoe;

namespace {

std::string command_line(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 0) arg = fs::path(arg).filename().string();
    if (arg.find_first_of(" \t'\"") != std::string::npos) arg = "'" + arg + "'";
    out += (i ? " " : "") + arg;
  }
  return out;
}

int export_main(int argc, char** argv) {
  po::options_description options(
      "usage: cdmoe-export --model DIR (--plan PLAN.json | --db FILE --candidate ID) --out DIR2 [options]\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "Hugging Face model directory to condense")
      ("plan", po::value<std::string>(), "plan JSON (ARCHITECTURE.md §7); condense ops need explicit weights here")
      ("db", po::value<std::string>(), "results database to take the candidate from (with --candidate)")
      ("candidate", po::value<int64_t>(), "candidate id in --db: its plan, and a fine-tune's trained tensors")
      ("out", po::value<std::string>(), "new directory to write (must not exist)")
      ("format", po::value<std::string>()->default_value("auto"),
       "transformers (a stock transformers checkpoint: qwen2_moe, qwen3_moe, deepseek as qwen2_moe), cdmoe (this "
       "project's form: every family and plan), or auto (transformers where the plan is expressible, else cdmoe)")
      ("dtype", po::value<std::string>(), "float32, bfloat16 or float16 (default: the source's torch_dtype)")
      ("max-shard-mb", po::value<int64_t>()->default_value(model::kDefaultMaxShardBytes / 1'000'000),
       "largest weight file, in MB (10^6 bytes); more weights go to further shards with an index");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("model") || !args.count("out")) throw_bad_input("--model and --out are required (see --help)");
  if (args.count("plan") == args.count("db")) throw_bad_input("give either --plan or --db with --candidate");
  if (args.count("db") != args.count("candidate")) throw_bad_input("--db and --candidate go together");
  const std::string format = args["format"].as<std::string>();
  if (format != "auto" && format != "transformers" && format != "cdmoe") {
    throw_bad_input("--format: \"" + format + "\" is not one of auto, transformers, cdmoe");
  }
  const int64_t max_shard_mb = checked_count(args["max-shard-mb"].as<int64_t>(), "--max-shard-mb", 1, 1'000'000);
  std::string model_dir = args["model"].as<std::string>();
  std::string out = args["out"].as<std::string>();
  if (fs::exists(out)) throw_bad_input("--out '" + out + "' exists; refusing to overwrite it");
  fs::path parent = fs::absolute(out).parent_path();
  if (!fs::is_directory(parent)) throw_bad_input("--out '" + out + "': directory '" + parent.string() + "' does not exist");
  if (access(parent.c_str(), W_OK) != 0) throw_bad_input("--out '" + out + "': directory '" + parent.string() + "' is not writable");

  // One decoder layer at a time: the export streams, so its memory is one layer and the
  // embedding and head, whatever the model's size (ARCHITECTURE.md §2, Residency).
  auto model = model::MoeModel::load(model_dir, at::kCPU, at::kFloat, model::Residency::kLayers);
  Plan plan;
  std::string plan_source;
  std::optional<db::Connection> connection;
  std::optional<db::CandidateOrigin> origin;
  int64_t id = 0;
  if (args.count("plan")) {
    plan_source = args["plan"].as<std::string>();
    plan = Plan::read_file(plan_source);
  } else {
    const std::string db_path = args["db"].as<std::string>();
    connection.emplace(db::open_database(db_path, db::OpenMode::kReadOnly));
    id = args["candidate"].as<int64_t>();
    plan_source = db_path + " candidate " + std::to_string(id);
    plan = Plan::parse(db::candidate_plan_json(*connection, id), plan_source);
    origin = db::candidate_origin(*connection, id);
    db::require_sweep_model(*origin, model::Checkpoint(model_dir).fingerprint(), model_dir, db_path);
    // CD-MoE-SR plans keep their weights implicit: the sweep's measured average routing weights.
    model->set_router_stats(model::RouterStats::from_rows(db::candidate_sweep_routing(*connection, id), model->shape(),
                                                          plan_source));
  }
  plan.validate(model->shape(), plan_source);
  if (!model->fixed_plan().is_original()) throw_bad_input(model_dir + " is an exported checkpoint already; export from the original");
  if (origin) {
    // A fine-tuned candidate is its plan plus its trained tensors: exported as evaluated, or not at all.
    bool trained = false;
    for (const Artifact& artifact : db::candidate_artifacts(*connection, id)) {
      if (artifact.kind != finetune::kTrainedTensorsArtifact) continue;
      finetune::apply_trained_tensors(*model, plan, artifact.path, artifact.sha256, plan_source);
      trained = true;
    }
    if (!trained && (origin->stage == db::kFinetuneStage || origin->stage == db::kManualFinetuneStage)) {
      throw_bad_input(plan_source + " is a fine-tuned model (" + origin->method + ") whose trained tensors the database does "
                      "not hold (not DONE, or recorded by a cdmoe before they were kept): exporting its plan would ship "
                      "the untuned weights");
    }
  }

  // Everything that can fail on the inputs happens before the first byte is written.
  const Json source_config = read_json_file(model_dir + "/config.json");
  model::ExportOptions export_options;
  export_options.max_shard_bytes = max_shard_mb * 1'000'000;
  export_options.dtype = args.count("dtype") ? args["dtype"].as<std::string>() : model::source_dtype(source_config);
  model::check_export_dtype(export_options.dtype, "--dtype");
  export_options.format = format == "cdmoe" ? model::ExportFormat::kCdmoe : model::ExportFormat::kTransformers;
  std::string stock_type = source_config.value("model_type", std::string());
  std::string fallback;  // why --format auto writes this project's form
  if (format != "cdmoe") {
    try {
      stock_type = model::stock_config(source_config, plan).value("model_type", stock_type);
    } catch (const Error& e) {
      if (format == "transformers" || e.kind() != ErrorKind::kBadInput) throw;
      fallback = e.what();
      export_options.format = model::ExportFormat::kCdmoe;
    }
  }
  (void)model->materialise_layout(plan);  // the plan, and the condense weights it needs
  if (connection) export_options.extra = {{"db", fs::absolute(args["db"].as<std::string>()).string()}, {"candidate", id}};
  ModelCardInput card{source_config, model_dir, plan,
                      export_options.format == model::ExportFormat::kTransformers ? "transformers" : "cdmoe", stock_type,
                      export_options.dtype, command_line(argc, argv), /*parameters: as written, below*/ 0,
                      parameter_ratio(model->shape(), plan), connection ? args["db"].as<std::string>() : "", id,
                      connection ? std::optional(db::candidate_record(*connection, id)) : std::nullopt};

  remove_stale_temporaries(out);  // staging folders of exports that were killed
  std::string staging = temporary_path(out);
  std::error_code cannot;
  if (!fs::create_directory(staging, cannot)) {
    throw_bad_input("--out '" + out + "': cannot create a directory there (" + cannot.message() + ")");
  }
  int64_t elements = 0;
  try {
    // The card's parameter count is the written one (a stock export pads and adds zero tensors).
    elements = model::write_hf_files(*model, plan, model_dir, staging, export_options);
    card.parameters = elements;
    write_file_atomically(staging + "/README.md", model_card(card));
    fs::rename(staging, out);
  } catch (...) {
    fs::remove_all(staging);
    throw;
  }
  if (!fallback.empty()) std::cerr << "cdmoe-export: wrote --format cdmoe: " << fallback << "\n";
  std::cout << "wrote " << out << " (" << card.format << ", " << stock_type << ", " << export_options.dtype << "): " << elements
            << " parameters, ratio " << parameter_ratio(model->shape(), plan) << " of the original\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-export", [&] { return export_main(argc, argv); });
}
