// cdmoe-export: writes a condensed checkpoint that loads on its own.
//   cdmoe-export --model DIR (--plan PLAN.json | --db FILE --candidate ID) --out DIR2
// DIR2 gets config.json (DIR's, plus a "cdmoe" block with the plan), model.safetensors
// (F32) holding only what the plan keeps, condensed layers as their fused dense MLP, and
// DIR's tokenizer files. Written to a temporary directory renamed into place at the end: DIR2
// is complete or absent, never half-written; an existing DIR2 is never overwritten.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
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

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace cdmoe;

namespace {

int export_main(int argc, char** argv) {
  po::options_description options(
      "usage: cdmoe-export --model DIR (--plan PLAN.json | --db FILE --candidate ID) --out DIR2\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "Hugging Face model directory to condense")
      ("plan", po::value<std::string>(), "plan JSON (ARCHITECTURE.md §7); condense ops need explicit weights here")
      ("db", po::value<std::string>(), "results database to take the plan from (with --candidate)")
      ("candidate", po::value<int64_t>(), "candidate id in --db whose plan to export")
      ("out", po::value<std::string>(), "new directory to write (must not exist)");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("model") || !args.count("out")) throw_bad_input("--model and --out are required (see --help)");
  if (args.count("plan") == args.count("db")) throw_bad_input("give either --plan or --db with --candidate");
  if (args.count("db") != args.count("candidate")) throw_bad_input("--db and --candidate go together");
  std::string model_dir = args["model"].as<std::string>();
  std::string out = args["out"].as<std::string>();
  if (fs::exists(out)) throw_bad_input("--out '" + out + "' exists; refusing to overwrite it");
  fs::path parent = fs::absolute(out).parent_path();
  if (!fs::is_directory(parent)) throw_bad_input("--out '" + out + "': directory '" + parent.string() + "' does not exist");
  if (access(parent.c_str(), W_OK) != 0) throw_bad_input("--out '" + out + "': directory '" + parent.string() + "' is not writable");

  auto model = model::MoeModel::load(model_dir);
  Plan plan;
  std::string plan_source;
  if (args.count("plan")) {
    plan_source = args["plan"].as<std::string>();
    plan = Plan::read_file(plan_source);
  } else {
    const std::string db_path = args["db"].as<std::string>();
    db::Connection connection = db::open_database(db_path, db::OpenMode::kReadOnly);
    int64_t id = args["candidate"].as<int64_t>();
    plan_source = db_path + " candidate " + std::to_string(id);
    plan = Plan::parse(db::candidate_plan_json(connection, id), plan_source);
    const db::CandidateOrigin origin = db::candidate_origin(connection, id);
    db::require_sweep_model(origin, model::Checkpoint(model_dir).fingerprint(), model_dir, db_path);
    // CD-MoE-SR plans keep their weights implicit: the sweep's measured average routing weights.
    model->set_router_stats(model::RouterStats::from_rows(db::candidate_sweep_routing(connection, id), model->shape(),
                                                          plan_source));
    plan.validate(model->shape(), plan_source);
    // A fine-tuned candidate is its plan plus its trained tensors: exported as evaluated, or not at all.
    bool trained = false;
    for (const Artifact& artifact : db::candidate_artifacts(connection, id)) {
      if (artifact.kind != finetune::kTrainedTensorsArtifact) continue;
      finetune::apply_trained_tensors(*model, plan, artifact.path, artifact.sha256, plan_source);
      trained = true;
    }
    if (!trained && (origin.stage == db::kFinetuneStage || origin.stage == db::kManualFinetuneStage)) {
      throw_bad_input(plan_source + " is a fine-tuned model (" + origin.method + ") whose trained tensors the database does "
                      "not hold (not DONE, or recorded by a cdmoe before they were kept): exporting its plan would ship "
                      "the untuned weights");
    }
  }
  plan.validate(model->shape(), plan_source);
  if (!model->fixed_plan().is_original()) throw_bad_input(model_dir + " is an exported checkpoint already; export from the original");

  // Everything that can fail on the inputs happens before the first byte is written.
  (void)model->materialise(plan);
  remove_stale_temporaries(out);  // staging folders of exports that were killed
  std::string staging = temporary_path(out);
  std::error_code cannot;
  if (!fs::create_directory(staging, cannot)) {
    throw_bad_input("--out '" + out + "': cannot create a directory there (" + cannot.message() + ")");
  }
  int64_t elements = 0;
  try {
    elements = model::write_hf_files(*model, plan, model_dir, staging);
    fs::rename(staging, out);
  } catch (...) {
    fs::remove_all(staging);
    throw;
  }
  std::cout << "wrote " << out << ": " << elements << " parameters (" << (elements * 4) / (1 << 20) << " MiB F32), "
            << "ratio " << parameter_ratio(model->shape(), plan) << " of the original\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-export", [&] { return export_main(argc, argv); });
}
