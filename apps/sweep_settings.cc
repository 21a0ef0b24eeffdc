#include "apps/sweep_settings.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/launch.h"
#include "core/error.h"
#include "core/names.h"
#include "eval/tasks.h"
#include "eval/text_data.h"
#include "finetune/limits.h"
#include "finetune/train_data.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/family.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "model/weight_names.h"
#include "search/budget.h"

namespace po = boost::program_options;

namespace cdmoe::apps {
namespace {

// A sweep name is a key users type into SQL and reports: printable, no surrounding blanks.
void check_sweep_name(const std::string& name) {
  if (name.empty()) throw_bad_input("--sweep must not be empty");
  check_printable_name(name, "--sweep");
  if (name.front() == ' ' || name.back() == ' ') throw_bad_input("--sweep \"" + name + "\" starts or ends with a space");
}

// --experts-kept as numbers; "auto" is CD-MoE-S (0, with shared experts only) and the k the
// reference ran this family with (model::reference_experts_kept).
std::vector<int> parse_experts_kept(const std::string& text, const ModelShape& shape) {
  if (text == "auto") {
    const int k = model::reference_experts_kept(shape);
    return shape.shared_intermediate_size > 0 ? std::vector<int>{0, k} : std::vector<int>{k};
  }
  std::vector<int> ks;
  for (const std::string& part : split_commas(text)) {
    char* end = nullptr;
    long k = std::strtol(part.c_str(), &end, 10);
    if (*end != '\0' || k < 0 || k > 1000000) {
      throw_bad_input("--experts-kept: \"" + part + "\" is not a non-negative integer");
    }
    ks.push_back(int(k));
  }
  if (ks.empty()) throw_bad_input("--experts-kept: give at least one k, e.g. 0,6");
  return ks;
}

std::string absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

search::SearchConfig search_config(const SweepSettings& s, const ModelShape& shape) {
  search::SearchConfig config;
  config.experts_kept = parse_experts_kept(s.experts_kept, shape);
  for (int k : config.experts_kept) {
    if (k > shape.num_routed_experts) {
      throw_bad_input("--experts-kept " + (s.experts_kept == "auto" ? "auto (" + std::to_string(k) + ")" : std::to_string(k)) +
                      " is more than the model's " +
                      std::to_string(shape.num_routed_experts) + " routed experts");
    }
  }
  config.expert_objective = search::Objective{s.expert_objective, "layer", 1.0};
  config.layer_objective = search::Objective{s.objective, "model", 1.0};
  config.beam_width = s.beam_width;
  config.seed = s.seed;
  config.screen_fraction = s.screen_fraction;
  config.plans_file = s.plans_file;
  if (s.budgets.empty()) throw_bad_input("--budgets is required, e.g. layers:1-4 or memory:0.7,0.8");
  config.budgets = search::parse_budgets(s.budgets, "--budgets");
  config.cost_model.sequence_length = s.seq_len;
  return config;
}

}  // namespace

std::optional<SweepSettings> parse_sweep_settings(int argc, char** argv, bool print_help) {
  SweepSettings s;
  po::options_description options(
      "usage: cdmoe-sweep --model DIR --calib FILE --db FILE --sweep NAME --budgets SPEC [options]\n"
      "       (under mpirun -np N or srun --mpi=pmix: rank 0 coordinates, the others are workers)\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("config", po::value<std::string>(), "read options from this file too (`name = value` lines; the command line wins)")
      ("model", po::value(&s.model_dir), "Hugging Face model directory (config.json + safetensors + tokenizer.json)")
      ("tokenizer", po::value(&s.tokenizer_dir), "directory or file of tokenizer.json (default: --model)")
      ("calib", po::value(&s.calib_path), "calibration text, JSONL {\"text\"} or plain (a document a line)")
      ("db", po::value(&s.db_path), "SQLite results database (created if absent)")
      ("sweep", po::value(&s.sweep_name), "sweep name: a new name starts a sweep, an existing one resumes it")
      ("strategy", po::value(&s.strategy)->default_value(s.strategy),
       ("search strategy, or several side by side (cdmoe,drop,random): " + search::strategy_names()).c_str())
      ("experts-kept", po::value(&s.experts_kept)->default_value(s.experts_kept),
       "routed experts kept per condensed layer (0: CD-MoE-S, k>0: CD-MoE-SR), comma-separated; auto: 0 and the reference's k for the family (deepseek 6, qwen2_moe 4)")
      ("budgets", po::value(&s.budgets), "budget points: layers:N[,M|A-B], memory:F|BYTES, speed:S, joined by ';' or '|'")
      ("objective", po::value(&s.objective)->default_value(s.objective),
       "layer-selection divergence from the original's final output: js-logits, js-hidden, kl, mse, cosine")
      ("expert-objective", po::value(&s.expert_objective)->default_value(s.expert_objective),
       "expert-selection divergence of the layer's own output")
      ("divergence-mean", po::value(&s.divergence_mean)->default_value(s.divergence_mean),
       "every divergence's mean: token (over all calibration tokens) or sequence (of each sequence's mean, as the reference)")
      ("beam-width", po::value(&s.beam_width)->default_value(s.beam_width), "plans kept per layer-selection step")
      ("screen-fraction", po::value(&s.screen_fraction)->default_value(s.screen_fraction),
       "successive halving: screen candidates on this fraction of the calibration set first (0: off)")
      ("calib-samples", po::value(&s.calib_samples)->default_value(s.calib_samples), "calibration documents used")
      ("seq-len", po::value(&s.seq_len)->default_value(s.seq_len), "tokens per calibration document (truncated)")
      ("packed", po::bool_switch(&s.packed), "pack documents into --seq-len blocks instead of truncating each")
      ("routing-tokens", po::value(&s.routing_tokens)->default_value(s.routing_tokens),
       "average routing weights (CD-MoE-SR's w̄) on: calibration (the sequences above) or full (each calibration document whole, up to max_position_embeddings, as the reference)")
      ("batch-size", po::value(&s.batch_size)->default_value(s.batch_size), "sequences per forward in task scoring")
      ("tasks", po::value(&s.tasks), "zero-shot tasks of full evaluations, comma-separated: arc_challenge, boolq, piqa, rte, openbookqa, winogrande, mmlu, hellaswag, arc_easy (from --benchmarks), FILE.jsonl ({context, choices, gold})")
      ("benchmarks", po::value(&s.benchmarks_dir), "folder with the tasks' files, README.md \"The paper's eight tasks\" (default: $CDMOE_BENCHMARKS_DIR)")
      ("task-average", po::value(&s.task_average)->default_value(s.task_average), "which metric of each task enters task_acc_mean: acc, acc_norm (where lm-eval reports it) or TASK=METRIC,... over acc")
      ("special-tokens", po::value(&s.special_tokens)->default_value(s.special_tokens), eval::kRequestSpecialTokensHelp)
      ("task-limit", po::value(&s.task_limit)->default_value(s.task_limit), "first N items per task (0: all)")
      ("ppl", po::value(&s.held_out_path), "held-out text for perplexity in full evaluations (default: none)")
      ("plans", po::value(&s.plans_file), "JSONL of plans for --strategy plans")
      ("device", po::value(&s.device)->default_value(s.device), "auto, cpu or cuda (cuda:local_rank % gpus)")
      ("dtype", po::value(&s.dtype)->default_value(s.dtype), "compute dtype: auto (bfloat16 on CUDA, float32 on the CPU), float32 or bfloat16")
      ("threads", po::value(&s.threads)->default_value(s.threads), "compute threads per worker (0: cores / ranks on the node)")
      ("seed", po::value(&s.seed)->default_value(s.seed), "seed of every random choice (data sampling, random baseline)")
      ("max-attempts", po::value(&s.max_attempts)->default_value(s.max_attempts), "dispatches of a candidate before it is FAILED")
      ("in-flight", po::value(&s.in_flight)->default_value(s.in_flight), "tasks queued per worker at once")
      ("cache-mb", po::value(&s.cache_mb)->default_value(s.cache_mb), "memory a worker keeps for reuse, MiB: three quarters for the layer cache (boundaries, "
       "expert outputs), a quarter for condensed layers")
      ("no-layer-cache", "recompute every candidate from the embeddings (same results to float rounding, slower)")
      ("no-full-eval", "search only: skip the full evaluation of the original and the budget points")
      ("finetune-data", po::value(&s.finetune_data),
       "after the search, fine-tune every budget point's condensed layers on this text (JSONL {\"text\"} or a document a line)")
      ("finetune-steps", po::value(&s.finetune_steps)->default_value(s.finetune_steps), "optimizer steps per fine-tune")
      ("finetune-lr", po::value(&s.finetune_lr)->default_value(s.finetune_lr), "peak learning rate (cosine decay to 0)")
      ("finetune-warmup", po::value(&s.finetune_warmup)->default_value(s.finetune_warmup), "linear warmup steps")
      ("finetune-batch-size", po::value(&s.finetune_batch_size)->default_value(s.finetune_batch_size), "sequences per step")
      ("finetune-seq-len", po::value(&s.finetune_seq_len)->default_value(s.finetune_seq_len), "tokens per sequence (0: --seq-len)")
      ("finetune-checkpoint-every", po::value(&s.finetune_checkpoint_every)->default_value(s.finetune_checkpoint_every),
       "checkpoint a fine-tune every N steps (and when preempted)")
      ("no-finetune-control", "do not fine-tune the original model's MoE blocks as the control")
      ("progress", po::bool_switch(&s.progress), "progress on stderr even when it is not a terminal")
      ("dry-run", po::bool_switch(&s.dry_run), "check the inputs, print the candidate count and cost estimate, exit");
  add_speed_options(options, s.speed);
  if (!print_help) {  // only rank 0 prints the help
    for (int i = 1; i < argc; ++i) {
      if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return std::nullopt;
    }
  }
  std::optional<po::variables_map> args = parse_options(argc, argv, options, /*with_command=*/false);
  if (!args) return std::nullopt;
  for (const char* required : {"model", "calib", "db", "sweep"}) {
    if (!args->count(required) && !(std::string(required) == "db" && s.dry_run)) {
      throw_bad_input(std::string("--") + required + " is required (see --help)");
    }
  }
  s.layer_cache = !args->count("no-layer-cache");
  s.full_evaluation = !args->count("no-full-eval");
  s.finetune_control = !args->count("no-finetune-control");
  if (s.finetune_seq_len == 0) s.finetune_seq_len = s.seq_len;
  if (!s.finetune_data.empty() || s.finetune_steps != 0) {
    if (s.finetune_data.empty()) throw_bad_input("--finetune-steps needs --finetune-data");
    if (s.finetune_steps < 1) throw_bad_input("--finetune-steps must be positive (with --finetune-data)");
    checked_count(s.finetune_steps, "--finetune-steps", 1, finetune::kMaxSteps);
    checked_number(s.finetune_lr, "--finetune-lr", 0, finetune::kMaxLearningRate, /*exclude_low=*/true);
    checked_count(s.finetune_warmup, "--finetune-warmup", 0, finetune::kMaxSteps);
    checked_count(s.finetune_seq_len, "--finetune-seq-len", 2, finetune::kMaxMicroBatchTokens);
    checked_count(s.finetune_batch_size, "--finetune-batch-size", 1, finetune::kMaxMicroBatchTokens / s.finetune_seq_len);
    checked_count(s.finetune_checkpoint_every, "--finetune-checkpoint-every", 0, finetune::kMaxSteps);
    if (!s.full_evaluation) throw_bad_input("--finetune-data needs the full evaluation (drop --no-full-eval)");
  }
  if (s.benchmarks_dir.empty()) {
    const char* env = std::getenv("CDMOE_BENCHMARKS_DIR");
    if (env) s.benchmarks_dir = env;
  }
  checked_threads(s.threads, "--threads");
  if (s.calib_samples < 1) throw_bad_input("--calib-samples must be at least 1, got " + std::to_string(s.calib_samples));
  checked_count(s.calib_samples, "--calib-samples", 1, int64_t(1) << 30);
  if (s.task_limit < 0) throw_bad_input("--task-limit must be 0 (all items) or positive, got " + std::to_string(s.task_limit));
  check_sweep_name(s.sweep_name);
  if (s.max_attempts < 1) throw_bad_input("--max-attempts must be at least 1");
  checked_count(s.max_attempts, "--max-attempts", 1, 1000);
  if (s.in_flight < 1) throw_bad_input("--in-flight must be at least 1");
  checked_count(s.in_flight, "--in-flight", 1, 1024);
  if (s.cache_mb < 0) throw_bad_input("--cache-mb must be 0 or positive");
  checked_count(s.cache_mb, "--cache-mb", 0, kMaxCacheMb);
  if (s.seq_len < 1) throw_bad_input("--seq-len must be at least 1");
  if (s.batch_size < 1) throw_bad_input("--batch-size must be at least 1");
  checked_count(s.batch_size, "--batch-size", 1, finetune::kMaxMicroBatchTokens / std::max<int64_t>(1, s.seq_len));
  divergence_mean_named(s.divergence_mean, "--divergence-mean");
  eval::request_special_tokens_named(s.special_tokens, "--special-tokens");
  if (s.routing_tokens != "calibration" && s.routing_tokens != "full") {
    throw_bad_input("--routing-tokens \"" + s.routing_tokens + "\" is not one of calibration, full");
  }
  s.speed.validate();
  if (s.device != "auto" && s.device != "cpu" && s.device != "cuda") {
    throw_bad_input("--device \"" + s.device + "\" is not one of auto, cpu, cuda");
  }
  return s;
}

ValidatedSweep validate_sweep(const SweepSettings& s) {
  // --device cuda where none is visible is refused here. The kind (cpu or cuda) is part of the
  // stored config: timings and rounding differ between them, so a resume may not switch.
  std::string device = model::device_for_this_process(s.device, 0);
  std::string device_kind = device.substr(0, device.find(':'));
  std::string dtype = model::compute_dtype_for(s.dtype, device);
  ValidatedSweep sweep;
  model::Checkpoint checkpoint(s.model_dir);  // config.json and every weight file's header
  model::ModelConfig config = model::read_checkpoint_config(checkpoint);
  // The weights against config.json (names, shapes, dtypes) from the headers alone, here on rank
  // 0 before anything is written, rather than in a worker after the sweep row exists.
  model::check_checkpoint_tensors(checkpoint, config, model::fixed_plan_of(checkpoint, config.shape));
  sweep.shape = config.shape;
  if (s.seq_len > sweep.shape.max_position_embeddings) {
    throw_bad_input("--seq-len " + std::to_string(s.seq_len) + " exceeds the model's max_position_embeddings " +
                    std::to_string(sweep.shape.max_position_embeddings));
  }
  std::string tokenizer_source = s.tokenizer_dir.empty() ? s.model_dir : s.tokenizer_dir;
  auto tokenizer = model::Tokenizer::load(tokenizer_source);
  model::check_tokenizer_fits(*tokenizer, sweep.shape.vocab_size, "tokenizer of " + tokenizer_source);
  eval::CalibrationOptions text{s.calib_samples, s.seq_len, s.packed, s.seed};
  eval::CalibrationSet calibration = eval::load_calibration(s.calib_path, *tokenizer, text);
  for (const auto& sequence : calibration.sequences) sweep.calibration_tokens += int64_t(sequence.size());
  Json data_hashes{{"calib", calibration.content_hash}};
  if (!s.held_out_path.empty()) data_hashes["ppl"] = eval::load_calibration(s.held_out_path, *tokenizer, text).content_hash;
  std::vector<eval::Task> tasks;
  for (const std::string& spec : split_commas(s.tasks)) {
    tasks.push_back(eval::load_task(spec, s.benchmarks_dir, s.task_limit));
    data_hashes["task:" + spec] = tasks.back().content_hash;
  }
  eval::check_task_average(s.task_average, tasks);
  if (!s.finetune_data.empty()) {
    if (s.finetune_seq_len > sweep.shape.max_position_embeddings) {
      throw_bad_input("--finetune-seq-len " + std::to_string(s.finetune_seq_len) + " exceeds the model's max_position_embeddings " +
                      std::to_string(sweep.shape.max_position_embeddings));
    }
    data_hashes["finetune"] = finetune::read_lm_rows(s.finetune_data, *tokenizer, s.finetune_seq_len).content_hash;
  }
  sweep.strategy = search::make_strategy(s.strategy, sweep.shape, search_config(s, sweep.shape));

  std::string model_hash = checkpoint.fingerprint();
  // What determines the results; runtime knobs (threads, in-flight, cache, attempts) are not in it.
  Json stored{{"model", absolute(s.model_dir)},  {"model_hash", model_hash},
              {"tokenizer", absolute(s.tokenizer_dir)}, {"tokenizer_hash", tokenizer->fingerprint()},
              {"calib", absolute(s.calib_path)},
              {"data_hashes", data_hashes},        {"calib_samples", s.calib_samples},
              {"seq_len", s.seq_len},               {"packed", s.packed}, {"routing_tokens", s.routing_tokens},
              {"strategy", s.strategy},             {"experts_kept", parse_experts_kept(s.experts_kept, sweep.shape)},
              {"budgets", s.budgets},               {"objective", s.objective},
              {"expert_objective", s.expert_objective}, {"divergence_mean", s.divergence_mean}, {"beam_width", s.beam_width},
              {"screen_fraction", s.screen_fraction}, {"tasks", s.tasks},
              {"task_limit", s.task_limit}, {"task_average", s.task_average}, {"special_tokens", s.special_tokens},         {"ppl", absolute(s.held_out_path)},
              {"plans", absolute(s.plans_file)},    {"seed", s.seed},
              {"full_evaluation", s.full_evaluation}, {"device", device_kind}, {"dtype", dtype},
              {"speed_repeats", s.speed.min_pairs},
              {"speed_ci", s.speed.target}, {"speed_max_s", s.speed.max_seconds}, {"speed_workload", s.speed.workload}};
  if (std::optional<FinetuneTask> task = finetune_task(s, data_hashes)) {
    // What determines the fine-tunes' results (not where checkpoints go, nor how often; the
    // data's hash is in data_hashes).
    Json params = task->to_params();
    params.erase("state_dir");
    params.erase("artifact_dir");
    params.erase("checkpoint_every");
    params.erase("data_hash");
    params["control"] = s.finetune_control;
    stored["finetune"] = params;
  }
  sweep.spec.name = s.sweep_name;
  sweep.spec.strategy = s.strategy;
  sweep.spec.config = stored;
  sweep.spec.seed = int64_t(s.seed);
  sweep.spec.model_path = absolute(s.model_dir);
  sweep.spec.model_hash = model_hash;
  sweep.spec.data_hashes = data_hashes;
  return sweep;
}

void print_dry_run(const SweepSettings& s, const ValidatedSweep& sweep, std::ostream& out) {
  const ModelShape& shape = sweep.shape;
  search::CostModel cost;
  cost.sequence_length = s.seq_len;
  // FLOPs per calibration token of one decoder layer, and of the final norm + LM head.
  double per_layer = search::estimated_cost_per_token(shape, Plan(), cost) / double(shape.num_layers);
  double head = 2.0 * double(shape.hidden_size) * double(shape.vocab_size);
  int64_t candidates = 0;
  double flops = 0;
  out << "sweep \"" << s.sweep_name << "\" (dry run): strategy " << s.strategy << ", " << shape.num_layers
      << " layers (" << shape.moe_layers().size() << " MoE), " << sweep.calibration_tokens << " calibration tokens\n";
  for (const search::StageProgress& stage : sweep.strategy->progress()) {
    bool layer_scope = stage.stage.rfind("expert_select", 0) == 0 || stage.stage.rfind("prune_select", 0) == 0;
    // A layer-scope candidate runs its own layer; a model-scope one runs, on average, half the
    // layers (from the first it changes) and the head.
    double layers = layer_scope ? 1.0 : double(shape.num_layers) / 2.0;
    flops += double(stage.total) * double(sweep.calibration_tokens) * (layers * per_layer + (layer_scope ? 0 : head));
    candidates += stage.total;
    out << "  " << stage.stage << ": " << stage.total << " candidates\n";
  }
  out << "candidates: " << candidates << " search";
  if (s.full_evaluation) out << " + full evaluations of the original and every budget point";
  out << "\nestimated search compute: " << flops / 1e12 << " TFLOP (forward passes over the calibration tokens)\n";
}

std::optional<FinetuneTask> finetune_task(const SweepSettings& s, const Json& data_hashes) {
  if (s.finetune_data.empty()) return std::nullopt;
  FinetuneTask t;
  t.data = absolute(s.finetune_data);
  t.data_hash = require_string(data_hashes, "finetune", "the sweep's data hashes");
  t.steps = s.finetune_steps;
  t.lr = s.finetune_lr;
  t.warmup = s.finetune_warmup;
  t.batch_size = s.finetune_batch_size;
  t.seq_len = s.finetune_seq_len;
  t.checkpoint_every = s.finetune_checkpoint_every;
  t.seed = s.seed;
  t.state_dir = finetune_state_dir(absolute(s.db_path));
  t.artifact_dir = artifact_dir(absolute(s.db_path));
  return t;
}

worker::WorkerOptions worker_options(const SweepSettings& s, int local_rank) {
  worker::WorkerOptions w;
  w.device = model::device_for_this_process(s.device, local_rank);
  w.dtype = model::compute_dtype_for(s.dtype, w.device);
  w.model_dir = s.model_dir;
  w.tokenizer_dir = s.tokenizer_dir;
  w.calib_path = s.calib_path;
  w.calib = eval::CalibrationOptions{s.calib_samples, s.seq_len, s.packed, s.seed};
  w.routing_full_documents = s.routing_tokens == "full";
  w.held_out_path = s.held_out_path;
  w.tasks = split_commas(s.tasks);
  w.benchmarks_dir = s.benchmarks_dir;
  w.task_limit = s.task_limit;
  w.task_average = s.task_average;
  w.special_tokens = eval::request_special_tokens_named(s.special_tokens, "--special-tokens");
  w.batch_size = s.batch_size;
  w.cache_bytes = s.layer_cache ? s.cache_mb << 20 : 0;
  w.full_divergence = s.objective;
  w.divergence_mean = divergence_mean_named(s.divergence_mean, "--divergence-mean");
  w.speed = s.speed;
  return w;
}

}  // namespace cdmoe::apps
