// cdmoe-train: fine-tunes a condensed model's condensed layers (or, with --train all, every
// parameter of a model), on one process or data-parallel on every rank of mpirun / srun.
//   cdmoe-train --model DIR (--plan PLAN.json | --db FILE --candidate ID) --data FILE --out DIR2
//               (--steps N | --epochs E) [--sft FILE] [--eval-data FILE] [...]
// DIR2 is the run's directory: train_run.json (what the run is), trainer_state.safetensors
// (the latest checkpoint), train_log.jsonl (a line per step and per held-out evaluation),
// train_summary.json (steps, tokens/s, peak RSS of this process) and,
// when the run is complete, a Hugging Face checkpoint that cdmoe-eval loads (model.safetensors,
// tokenizer files, and config.json written last). Running the same command again resumes from
// the checkpoint (after a kill, SIGTERM/SIGINT/SIGUSR2 (exit 75), or a crash); a DIR2 of another
// run is refused naming what differs. With --db, the fine-tuned model is recorded as a new
// candidate of the candidate's sweep (method + "_ft", parent = the candidate) with its loss curve
// in finetune_steps and its held-out losses (--eval-data) in finetune_held_out, in one
// transaction at the end.
// Exit codes: 0 done, 2 bad input, 1 failure, 75 stopped by a signal (checkpointed).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <ATen/Parallel.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/launch.h"
#include "comm/collective.h"
#include "comm/mpi_transport.h"
#include "core/error.h"
#include "core/finetune_task.h"
#include "core/host_name.h"
#include "core/progress.h"
#include "db/database.h"
#include "db/report_queries.h"
#include "db/store.h"
#include "db/sweep_lease.h"
#include "eval/device_memory.h"
#include "finetune/job.h"
#include "finetune/limits.h"
#include "finetune/trained_tensors.h"
#include "finetune/training_run.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/hf_export.h"
#include "model/moe_model.h"
#include "model/tokenizer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace cdmoe;

namespace {

constexpr int kStoppedExitCode = 75;  // EX_TEMPFAIL: run the same command again to resume
std::atomic<int> g_stop{0};

po::options_description train_options() {
  const FinetuneTask defaults;  // the one source of every fine-tuning default (core/finetune_task.h)
  po::options_description options(
      "usage: cdmoe-train --model DIR (--plan PLAN.json | --db FILE --candidate ID) --data FILE --out DIR2 "
      "(--steps N | --epochs E) [options]\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("model", po::value<std::string>(), "Hugging Face model directory (the original model)")
      ("plan", po::value<std::string>(), "plan JSON whose condensed layers to train (condense ops need weights here)")
      ("db", po::value<std::string>(), "results database: take the plan of --candidate from it and record the fine-tuned model there")
      ("candidate", po::value<int64_t>(), "candidate id in --db")
      ("data", po::value<std::string>(), "training text: JSONL {\"text\"} (name ends in .jsonl) or a document a line")
      ("sft", po::value<std::string>(), "SFT JSONL {\"prompt\", \"response\"}, trained after --data (only responses in the loss)")
      ("out", po::value<std::string>(), "run directory: checkpoints, log, and the fine-tuned model")
      ("train", po::value<std::string>()->default_value(defaults.train),
       "what trains: condensed (the plan's condensed layers), all (every parameter), or blocks (the MoE blocks of --layers)")
      ("layers", po::value<std::string>(), "--train blocks: comma-separated MoE layers whose blocks train")
      ("steps", po::value<int64_t>(), "optimizer steps on --data")
      ("epochs", po::value<double>(), "passes over --data instead of --steps")
      ("sft-epochs", po::value<double>()->default_value(1.0), "passes over --sft")
      ("lr", po::value<double>()->default_value(defaults.lr), "peak learning rate")
      ("warmup", po::value<int64_t>()->default_value(defaults.warmup), "linear warmup steps")
      ("decay", po::value<std::string>()->default_value(defaults.decay), "after warmup: cosine, linear or constant")
      ("lr-floor", po::value<double>()->default_value(defaults.lr_floor), "fraction of --lr the decay ends at")
      ("weight-decay", po::value<double>()->default_value(defaults.weight_decay), "AdamW weight decay (matrices only)")
      ("clip", po::value<double>()->default_value(defaults.clip), "gradient-norm clip (0: none)")
      ("balance-coef", po::value<double>()->default_value(finetune::TrainerOptions{}.balance_coefficient), "--train all: weight of the router balance loss")
      ("batch-size", po::value<int64_t>()->default_value(defaults.batch_size), "sequences per micro-batch per rank")
      ("grad-accum", po::value<int64_t>()->default_value(1), "micro-batches per optimizer step")
      ("seq-len", po::value<int64_t>()->default_value(defaults.seq_len), "tokens per sequence")
      ("eval-data", po::value<std::string>(), "held-out text for loss and perplexity")
      ("eval-every", po::value<int64_t>()->default_value(0), "held-out evaluation every N steps (0: at the end only)")
      ("checkpoint-every", po::value<int64_t>()->default_value(defaults.checkpoint_every), "checkpoint every N steps (0: only when stopped and at the end)")
      ("seed", po::value<uint64_t>()->default_value(defaults.seed), "data order seed")
      ("device", po::value<std::string>()->default_value("auto"), "auto, cpu or cuda")
      ("dtype", po::value<std::string>()->default_value("auto"), "compute dtype: auto, float32 or bfloat16")
      ("collective", po::value<std::string>()->default_value("auto"), "gradient averaging across ranks: auto (nccl on CUDA when built, else mpi), mpi or nccl")
      ("threads", po::value<int>()->default_value(0), "compute threads (0: the node's cores shared among its ranks)")
      ("progress", "show progress on stderr even when it is not a terminal");
  return options;
}

int64_t positive_count(const po::variables_map& args, const char* name) {
  int64_t value = args[name].as<int64_t>();
  if (value <= 0) throw_bad_input(std::string("--") + name + " must be positive");
  return value;
}

int64_t non_negative(const po::variables_map& args, const char* name) {
  int64_t value = args[name].as<int64_t>();
  if (value < 0) throw_bad_input(std::string("--") + name + " must be 0 or positive");
  return value;
}

// A real-valued option within [low, high] ((low, high] when exclude_low): apps/cli.h.
double number(const po::variables_map& args, const char* name, double low, double high, bool exclude_low = false) {
  return checked_number(args[name].as<double>(), std::string("--") + name, low, high, exclude_low);
}

std::string file_option(const po::variables_map& args, const char* name) {
  std::string path = args[name].as<std::string>();
  if (!fs::is_regular_file(path)) throw_bad_input(std::string("--") + name + " '" + path + "': no such file");
  return path;
}

// The run's directory and what is in it.
struct RunFiles {
  std::string dir;
  std::string run() const { return dir + "/train_run.json"; }
  std::string state() const { return dir + "/trainer_state.safetensors"; }
  std::string log() const { return dir + "/train_log.jsonl"; }
  std::string config() const { return dir + "/config.json"; }
  std::string summary() const { return dir + "/train_summary.json"; }
};

// The step the finished run's last process resumed from, as its summary says (0 without one).
int64_t resumed_from_summary(const RunFiles& files, int64_t steps) {
  if (!fs::is_regular_file(files.summary())) return 0;
  Json summary = read_json_file(files.summary());
  return with_json_errors(files.summary(), [&] { return steps - summary.at("steps_this_process").get<int64_t>(); });
}

// Keeps the log lines of steps before `step` (a killed run may have logged past its checkpoint).
void trim_log(const RunFiles& files, int64_t step) {
  std::ifstream in(files.log());
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json entry = Json::parse(line, nullptr, false);
    if (entry.is_discarded() || !entry.contains("step")) continue;  // a line torn by the kill
    if (entry["step"].get<int64_t>() < step || (entry.contains("eval_loss") && entry["step"].get<int64_t>() <= step)) {
      kept += line + "\n";
    }
  }
  write_file_atomically(files.log(), kept, "--out");
}

std::string format_rate(double value) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(value < 100 ? 1 : 0) << value;
  return out.str();
}

// --db --candidate: the sweep candidate whose plan trains, and the checks that the run fits its
// sweep: a candidate the sweep evaluated (not a fine-tune, whose weights cdmoe-train does not
// start from), on the model and tokenizer the sweep recorded.
struct SweepParent {
  std::string db_path;
  int64_t id = 0;
  db::CandidateOrigin origin;
};

void check_parent_fits(const SweepParent& parent, const model::Checkpoint& checkpoint, const model::Tokenizer& tokenizer,
                       const std::string& model_dir) {
  const db::CandidateOrigin& origin = parent.origin;
  const std::string candidate = "--candidate " + std::to_string(parent.id);
  if (origin.stage == db::kFinetuneStage || origin.stage == db::kManualFinetuneStage) {
    throw_bad_input(candidate + " is a fine-tuned model (" + origin.method + "); cdmoe-train starts from the original weights: "
                    "give the candidate it was fine-tuned from");
  }
  db::require_sweep_model(origin, checkpoint.fingerprint(), model_dir, parent.db_path);
  Json config = parse_json_text(origin.sweep_config_json, parent.db_path + " sweep \"" + origin.sweep + "\" config");
  if (config.contains("tokenizer_hash") && config["tokenizer_hash"] != tokenizer.fingerprint()) {
    throw_bad_input("the tokenizer in --model " + model_dir + " is not the one sweep \"" + origin.sweep +
                    "\" used (tokenizer.json or tokenizer_config.json differ)");
  }
}

// Records the finished run into its sweep as a candidate of its own (leader only). 0, or
// kStoppedExitCode when a sweep coordinator holds the sweep now: the same command, run again
// once it has stopped, records the finished run.
int record_in_sweep(const SweepParent& parent, const Plan& plan, const Json& identity, const RunFiles& files,
                    const finetune::TrainPosition& position, int64_t resumed_from, finetune::Trainer& trainer) {
  db::Store store(parent.db_path);
  std::optional<db::SweepLease> lease;
  try {
    lease.emplace(store.connection(), parent.origin.sweep);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kBadInput) throw;
    std::cerr << "cdmoe-train: the run in " << files.dir << " is complete but not recorded: " << e.what()
              << ". Run the same command again once that coordinator has stopped: it records the finished run.\n";
    return kStoppedExitCode;
  }
  db::CandidateSpec spec{db::kManualFinetuneStage, parent.origin.method + "_ft", plan, parent.id, parent.origin.budget};
  Result result;
  result.worker_host = host_name();
  result.finetune_steps = position.steps();
  result.metrics = finetune::finetune_metrics(position, resumed_from);
  result.held_out_losses = position.held_out_losses();
  // The trained tensors beside the database, as a sweep's fine-tune keeps them: what
  // cdmoe-export --db --candidate exports.
  result.artifacts.push_back(finetune::save_trained_tensors(trainer, artifact_dir(fs::absolute(parent.db_path).string())));
  auto [id, recorded] = store.record_train_run(parent.origin.sweep_id, spec, identity, fs::absolute(files.dir).string(), result);
  if (recorded) {
    std::cout << "recorded candidate " << id << " (" << spec.method << ", stage " << spec.stage << ", parent " << parent.id << ")\n";
  } else {
    std::cout << "this run is recorded already: candidate " << id << " of sweep \"" << parent.origin.sweep << "\"\n";
  }
  return 0;
}

int train_main(int argc, char** argv, comm::MpiSession* mpi) {
  auto parsed = parse_options(argc, argv, train_options(), /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  for (const char* required : {"model", "data", "out"}) {
    if (!args.count(required)) throw_bad_input(std::string("--") + required + " is required (see --help)");
  }
  if (args.count("steps") == args.count("epochs")) throw_bad_input("give either --steps or --epochs");
  if (args.count("db") != args.count("candidate")) throw_bad_input("--db and --candidate go together");
  if (args.count("plan") && args.count("db")) throw_bad_input("give either --plan or --db with --candidate, not both");
  const finetune::TrainMode mode = finetune::train_mode_named(args["train"].as<std::string>());
  if (mode == finetune::TrainMode::kCondensed && !args.count("plan") && !args.count("db")) {
    throw_bad_input("--train condensed needs the plan to train: --plan, or --db with --candidate");
  }
  if ((mode == finetune::TrainMode::kBlocks) != (args.count("layers") > 0)) {
    throw_bad_input("--layers goes with --train blocks, and --train blocks needs --layers");
  }
  std::vector<int> block_layers;
  if (args.count("layers")) {
    for (const std::string& item : split_commas(args["layers"].as<std::string>())) {
      try {
        size_t used = 0;
        block_layers.push_back(std::stoi(item, &used));
        if (used != item.size()) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        throw_bad_input("--layers: \"" + item + "\" is not a layer index");
      }
    }
  }
  const std::string model_dir = args["model"].as<std::string>();
  const std::string data_path = file_option(args, "data");
  const int64_t seq_len = positive_count(args, "seq-len");
  const int64_t batch_size = positive_count(args, "batch-size");
  const int64_t grad_accum = positive_count(args, "grad-accum");
  if (seq_len > finetune::kMaxMicroBatchTokens || batch_size > finetune::kMaxMicroBatchTokens / seq_len) {
    throw_bad_input("--batch-size " + std::to_string(batch_size) + " × --seq-len " + std::to_string(seq_len) +
                    " tokens per micro-batch is more than any device holds (at most " + std::to_string(finetune::kMaxMicroBatchTokens) + ")");
  }
  if (grad_accum > finetune::kMaxGradAccum) {
    throw_bad_input("--grad-accum " + std::to_string(grad_accum) + " is more than " + std::to_string(finetune::kMaxGradAccum));
  }
  const double lr = number(args, "lr", 0, finetune::kMaxLearningRate, /*exclude_low=*/true);
  if (args.count("steps")) {
    const int64_t steps = args["steps"].as<int64_t>();
    if (steps <= 0 || steps > finetune::kMaxSteps) {
      throw_bad_input("--steps must lie in 1.." + std::to_string(finetune::kMaxSteps) + ", got " + std::to_string(steps));
    }
  }
  if (args.count("epochs")) number(args, "epochs", 0, finetune::kMaxEpochs, /*exclude_low=*/true);
  const double sft_epochs = number(args, "sft-epochs", 0, finetune::kMaxEpochs, /*exclude_low=*/true);
  const double lr_floor = number(args, "lr-floor", 0, 1);
  const double weight_decay = args["weight-decay"].as<double>();
  if (!(weight_decay >= 0 && weight_decay < 1)) throw_bad_input("--weight-decay must lie in [0, 1)");
  const double clip = number(args, "clip", 0, 1e9);
  const double balance_coefficient = number(args, "balance-coef", 0, finetune::kMaxBalanceCoefficient);
  const int threads = checked_threads(args["threads"].as<int>(), "--threads");

  std::unique_ptr<comm::Collective> collective;
  const int local_rank = mpi ? mpi->local_rank() : 0;
  const int compute_threads = threads > 0 ? threads : std::max(1, usable_cores() / (mpi ? mpi->local_size() : 1));
  warn_if_threads_share_cores("cdmoe-train", compute_threads);
  at::set_num_threads(compute_threads);

  // The model, its plan and the data: everything that can be wrong is found before a byte is written.
  const std::string device = model::device_for_this_process(args["device"].as<std::string>(), local_rank);
  const std::string dtype = model::compute_dtype_for(args["dtype"].as<std::string>(), device);
  std::string collective_name = args["collective"].as<std::string>();
  if (collective_name == "auto") collective_name = !mpi ? "single" : device != "cpu" && comm::nccl_available() ? "nccl" : "mpi";
  if (collective_name != "single" && collective_name != "mpi" && collective_name != "nccl") {
    throw_bad_input("--collective: \"" + collective_name + "\" is not one of auto, mpi, nccl");
  }
  if (!mpi || mpi->transport().size() == 1) collective = comm::make_single_collective();
  else if (collective_name == "nccl") collective = comm::make_nccl_collective(at::Device(device).index());
  else collective = comm::make_mpi_collective();
  if (collective->backend() == "mpi" && device != "cpu") {
    throw_bad_input("--collective mpi averages host memory; with --device cuda use nccl (or --device cpu)");
  }
  const bool leader = collective->rank() == 0;

  model::Checkpoint checkpoint(model_dir);
  auto model = model::MoeModel::load(model_dir, at::Device(device), model::compute_dtype_named(dtype));
  auto tokenizer = model::Tokenizer::load(model_dir);
  model::check_tokenizer_fits(*tokenizer, model->shape().vocab_size, model_dir + "/tokenizer.json");
  Plan plan;
  std::string plan_source = "no plan";
  std::optional<SweepParent> parent;
  if (args.count("plan")) {
    plan_source = args["plan"].as<std::string>();
    plan = Plan::read_file(plan_source);
  } else if (args.count("db")) {
    parent.emplace();
    parent->db_path = file_option(args, "db");
    parent->id = args["candidate"].as<int64_t>();
    db::Connection connection = db::open_database(parent->db_path, db::OpenMode::kReadOnly);
    plan_source = parent->db_path + " candidate " + std::to_string(parent->id);
    parent->origin = db::candidate_origin(connection, parent->id);
    check_parent_fits(*parent, checkpoint, *tokenizer, model_dir);
    plan = Plan::parse(db::candidate_plan_json(connection, parent->id), plan_source);
    model->set_router_stats(
        model::RouterStats::from_rows(db::candidate_sweep_routing(connection, parent->id), model->shape(), plan_source));
  }
  plan.validate(model->shape(), plan_source);
  if (!model->fixed_plan().is_original()) throw_bad_input(model_dir + " is an exported checkpoint; train from the original model");
  if (seq_len > model->shape().max_position_embeddings) {
    throw_bad_input("--seq-len " + std::to_string(seq_len) + " exceeds the model's max_position_embeddings " +
                    std::to_string(model->shape().max_position_embeddings));
  }

  finetune::TokenRows lm = finetune::read_lm_rows(data_path, *tokenizer, seq_len);
  std::optional<finetune::TokenRows> sft, held_out;
  if (args.count("sft")) sft = finetune::read_sft_rows(file_option(args, "sft"), *tokenizer, seq_len);
  if (args.count("eval-data")) held_out = finetune::read_lm_rows(file_option(args, "eval-data"), *tokenizer, seq_len);

  // The job's spec: the same type, defaults and options a sweep's fine-tune is built from.
  FinetuneTask spec;
  spec.data = data_path;
  spec.data_hash = lm.content_hash;
  spec.train = finetune::train_mode_name(mode);
  spec.layers = block_layers;
  spec.lr = lr;
  spec.warmup = non_negative(args, "warmup");
  spec.decay = args["decay"].as<std::string>();
  spec.lr_floor = lr_floor;
  spec.weight_decay = weight_decay;
  spec.clip = clip;
  spec.batch_size = batch_size;
  spec.seq_len = seq_len;
  spec.checkpoint_every = non_negative(args, "checkpoint-every");
  spec.seed = args["seed"].as<uint64_t>();
  finetune::RunOptions run = finetune::run_options(spec);
  run.grad_accum = grad_accum;
  run.eval_every = non_negative(args, "eval-every");
  const int64_t G = finetune::global_batch(run, collective->size());
  run.lm_steps = args.count("steps") ? args["steps"].as<int64_t>()
                                     : finetune::steps_for_epochs(args["epochs"].as<double>(), int64_t(lm.rows.size()), G, "--epochs");
  spec.steps = run.lm_steps;
  if (sft) run.sft_steps = finetune::steps_for_epochs(sft_epochs, int64_t(sft->rows.size()), G, "--sft-epochs");
  const int64_t total = run.lm_steps + run.sft_steps;

  finetune::TrainerOptions trainer_options = finetune::trainer_options(spec, total);
  trainer_options.balance_coefficient = balance_coefficient;
  finetune::Trainer trainer(*model, plan, trainer_options, *collective);  // refuses a plan with nothing to train

  // What the run is: a checkpoint or directory made with anything else is not resumed, and what
  // a sweep records as the fine-tune's provenance. Every file the model is read with enters by
  // its fingerprint.
  run.identity = {{"model", checkpoint.fingerprint()}, {"tokenizer", tokenizer->fingerprint()}, {"plan_hash", plan.hash()},
                  {"train", spec.train},
                  {"data", spec.data_hash}, {"sft", sft ? sft->content_hash : ""}, {"seq_len", spec.seq_len},
                  {"global_batch", G}, {"lm_steps", run.lm_steps}, {"sft_steps", run.sft_steps}, {"lr", spec.lr},
                  {"warmup", spec.warmup}, {"decay", spec.decay},
                  {"lr_floor", spec.lr_floor}, {"weight_decay", spec.weight_decay}, {"clip", spec.clip},
                  {"balance_coef", trainer_options.balance_coefficient}, {"layers", spec.layers},
                  {"seed", spec.seed}, {"dtype", dtype}};
  RunFiles files{args["out"].as<std::string>()};
  run.state_path = files.state();
  // Ranks started with other options or files fail here, together, before anything is written.
  finetune::check_same_identity_on_every_rank(trainer, run.identity);

  // The run directory: new, or this run's (resume). Rank 0 decides; the others follow.
  double complete = 0;
  std::optional<finetune::TrainPosition> stored;
  if (leader) {
    if (fs::exists(files.dir)) {
      if (!fs::is_regular_file(files.run())) {
        throw_bad_input("--out '" + files.dir + "' exists and is not a cdmoe-train run directory; refusing to touch it");
      }
      finetune::check_same_run(read_json_file(files.run()), run.identity, "--out '" + files.dir + "'");
      // The checkpoint is checked whole (identity, position, checksum) before the log is touched.
      stored = finetune::check_train_state(files.state(), run.identity, total);
      complete = fs::exists(files.config()) ? 1 : 0;
      if (complete > 0 && !(stored && stored->step == total)) {
        throw_bad_input("--out '" + files.dir + "' holds a fine-tuned model but no checkpoint of its last step; it cannot be "
                        "recorded or resumed");
      }
    } else {
      fs::path parent_dir = fs::absolute(files.dir).parent_path();
      if (!fs::is_directory(parent_dir)) throw_bad_input("--out '" + files.dir + "': directory '" + parent_dir.string() + "' does not exist");
      if (access(parent_dir.c_str(), W_OK) != 0) throw_bad_input("--out '" + files.dir + "': directory '" + parent_dir.string() + "' is not writable");
    }
  }
  trainer.sum_over_ranks(&complete, 1);
  if (complete > 0) {
    if (!leader) return 0;
    std::cerr << "cdmoe-train: " << files.dir << " holds the finished run already; nothing to train\n";
    if (!parent) return 0;
    // The last checkpoint holds the trained weights: put them back into the model to keep them.
    finetune::load_train_state(files.state(), trainer.optimizer(), run.identity, total);
    return record_in_sweep(*parent, plan, run.identity, files, *stored, resumed_from_summary(files, stored->step), trainer);
  }
  if (parent && leader) {
    // Not while a coordinator writes the sweep: the run would train for nothing it could record.
    db::Store store(parent->db_path);
    try {
      db::SweepLease probe(store.connection(), parent->origin.sweep);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kBadInput) throw;
      throw_bad_input(std::string(e.what()) + "; fine-tune its candidates once it has stopped");
    }
  }
  if (leader && !fs::exists(files.dir)) {
    fs::create_directory(files.dir);
    write_file_atomically(files.run(), run.identity.dump(2) + "\n", "--out");
  }
  if (leader) trim_log(files, stored ? stored->step : 0);

  install_stop_flag(g_stop);
  const bool show = args.count("progress") > 0 || Progress::stderr_is_tty();
  Progress progress("cdmoe-train", total, leader && show);
  std::ofstream log;
  if (leader) log.open(files.log(), std::ios::app);
  auto started = std::chrono::steady_clock::now();
  int64_t tokens_this_process = 0;
  finetune::RunCallbacks callbacks;
  callbacks.on_step = [&](int64_t step, const finetune::StepStats& stats) {
    tokens_this_process += stats.tokens;
    if (!leader) return;
    log << Json{{"step", step}, {"loss", stats.loss}, {"lr", stats.lr}, {"tokens", stats.tokens},
                {"grad_norm", stats.grad_norm}, {"balance_loss", stats.balance_loss}, {"forward_s", stats.forward_s},
                {"backward_s", stats.backward_s}, {"reduce_s", stats.reduce_s}, {"optimizer_s", stats.optimizer_s}}
               .dump()
        << "\n"
        << std::flush;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    progress.update(step + 1, total,
                    "loss " + format_rate(stats.loss) + ", " + format_rate(double(tokens_this_process) / std::max(elapsed, 1e-9)) + " tok/s");
  };
  callbacks.on_eval = [&](int64_t step, double loss, int64_t tokens) {
    if (!leader) return;
    log << Json{{"step", step}, {"eval_loss", loss}, {"eval_ppl", std::exp(loss)}, {"eval_tokens", tokens}}.dump() << "\n" << std::flush;
    std::cerr << "cdmoe-train: step " << step << ": held-out loss " << loss << " nats, perplexity " << std::exp(loss) << "\n";
  };
  finetune::RunData data{&lm, sft ? &*sft : nullptr, held_out ? &*held_out : nullptr};
  finetune::RunOutcome outcome = finetune::run_training(trainer, data, run, callbacks, g_stop);
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log.close();
  if (outcome.stopped) {
    if (leader) {
      std::cerr << "cdmoe-train: stopped by signal " << g_stop.load() << " after step " << outcome.position.step
                << "; checkpointed in " << files.state() << ". Run the same command to resume.\n";
    }
    return kStoppedExitCode;
  }
  if (!leader) return 0;

  // The fine-tuned model: weights and tokenizer first, config.json last (the completion mark).
  Json extra = {{"finetune", {{"train", finetune::train_mode_name(mode)}, {"steps", outcome.position.step},
                              {"tokens", outcome.position.tokens}, {"data", lm.content_hash}}}};
  // What this process measured, for BENCHMARKS.md and the curious: its own steps only (a resumed
  // run's earlier steps ran in another process).
  const int64_t steps_here = outcome.position.step - outcome.resumed_from;
  Json summary = {{"steps", outcome.position.step}, {"steps_this_process", steps_here},
                  {"tokens", outcome.position.tokens}, {"train_s", train_s},
                  {"tokens_per_s", double(tokens_this_process) / std::max(train_s, 1e-9)},
                  {"peak_rss_bytes", eval::peak_rss_bytes()}, {"ranks", collective->size()},
                  {"collective", collective->backend()}, {"threads", at::get_num_threads()},
                  {"trainable_parameters", trainer.trainable_elements()}, {"device", device}, {"dtype", dtype}};
  write_file_atomically(files.summary(), summary.dump(2) + "\n", "--out");
  model::ExportOptions export_options;
  export_options.dtype = "float32";  // what trained, unrounded: the run's model as it was evaluated
  export_options.extra = extra;
  int64_t elements = model::write_hf_files(*model, plan, model_dir, files.dir, export_options);
  std::cout << "wrote " << files.dir << ": " << outcome.position.step << " steps, " << outcome.position.tokens
            << " target tokens, " << trainer.trainable_elements() << " trained of " << elements << " parameters\n";
  return parent ? record_in_sweep(*parent, plan, run.identity, files, outcome.position, outcome.resumed_from, trainer) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  model::flush_denormals_unless_kept();
  std::unique_ptr<comm::MpiSession> mpi;
  return run_cli("cdmoe-train", [&] {
    if (launched_by_mpi()) mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    return train_main(argc, argv, mpi.get());
  });
}
