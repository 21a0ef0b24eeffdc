#include "worker/worker.h"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include <ATen/ATen.h>

#include "comm/collective.h"
#include "comm/transport.h"
#include "core/error.h"
#include "core/host_name.h"
#include "core/finetune_task.h"
#include "core/objectives.h"
#include "eval/evaluation.h"
#include "eval/layer_cache.h"
#include "eval/router_statistics.h"
#include "finetune/job.h"
#include "finetune/trained_tensors.h"
#include "finetune/training_run.h"
#include "model/moe_model.h"
#include "model/tokenizer.h"

namespace cdmoe::worker {
struct Worker::Impl {
  WorkerOptions options;
  int rank = 0;
  std::unique_ptr<model::MoeModel> model;
  std::unique_ptr<model::Tokenizer> tokenizer;
  eval::EvaluationRequest full;  // tasks, held-out and calibration text for full evaluations
  std::unique_ptr<eval::LayerCache> cache;

  Result search(const Task& task) {
    std::string where = "task " + std::to_string(task.candidate_id);
    std::string divergence = require_string(task.params, "divergence", where);
    std::string scope = require_string(task.params, "scope", where);
    double fraction = number_or(task.params, "calib_fraction", 1.0, where);
    const DivergenceInfo& info = find_divergence(divergence, where);
    std::string metric = require_string(task.params, "metric", where);
    std::optional<Plan> incumbent;  // layer selection: the plan this candidate extends
    if (task.params.contains("incumbent")) incumbent = Plan::from_json(task.params.at("incumbent"), where + " incumbent");
    double value = eval::measure_objective(*cache, info, scope, task.plan, fraction, incumbent ? &*incumbent : nullptr);
    Result result;
    result.metrics.push_back(Metric{metric, value, info.unit});
    return result;
  }

  Result full_eval(const Task& task) {
    Result result;
    result.metrics = eval::evaluate(*model, *tokenizer, task.plan, full);
    return result;
  }

  // Tokenised fine-tuning text, kept per (file, seq_len) for the whole sweep.
  std::map<std::pair<std::string, int64_t>, finetune::TokenRows> training_text;
  const finetune::TokenRows& training_rows(const std::string& path, int64_t seq_len) {
    auto key = std::make_pair(path, seq_len);
    auto it = training_text.find(key);
    if (it == training_text.end()) it = training_text.emplace(key, finetune::read_lm_rows(path, *tokenizer, seq_len)).first;
    return it->second;
  }

  Result finetune(const Task& task) {
    const FinetuneTask spec = FinetuneTask::from_params(task.params, "task " + std::to_string(task.candidate_id));
    const finetune::TokenRows& rows = training_rows(spec.data, spec.seq_len);
    if (rows.content_hash != spec.data_hash) {
      throw_runtime("--finetune-data " + spec.data + " has changed since the sweep started (sha256 " + spec.data_hash.substr(0, 12) +
                    "... then, " + rows.content_hash.substr(0, 12) + "... now): its fine-tunes would train on other text");
    }
    const finetune::TrainerOptions trainer_options = finetune::trainer_options(spec, spec.steps);
    finetune::RunOptions run = finetune::run_options(spec);
    std::filesystem::create_directories(spec.state_dir);
    run.state_path = spec.checkpoint_path(task.candidate_id);
    run.identity = spec.run_identity();
    run.identity["plan_hash"] = task.plan.hash();
    // The sweep's checkpoints are its own working files: one that cannot be used is started over.
    run.restart_unusable_checkpoint = true;

    // The model is shared with every later task: what training changes is put back on the way out.
    std::vector<std::pair<at::Tensor, at::Tensor>> originals;  // kBlocks: (model tensor, copy)
    auto restore = [&] {
      at::NoGradGuard no_grad;
      for (auto& [tensor, copy] : originals) tensor.copy_(copy);
      model->forget_condensed(task.plan);
    };
    static const std::atomic<int> never{0};
    finetune::RunOutcome outcome;
    Result result;
    try {
      auto single = comm::make_single_collective();
      {
        finetune::Trainer trainer(*model, task.plan, trainer_options, *single);
        if (trainer_options.mode != finetune::TrainMode::kCondensed) {
          for (const auto& [name, tensor] : trainer.trainable()) originals.emplace_back(tensor, tensor.detach().clone());
        }
        outcome = finetune::run_training(trainer, {&rows, nullptr, nullptr}, run, {}, options.stop ? *options.stop : never);
        // What the evaluation below measures, kept so the candidate can be exported as evaluated.
        if (!outcome.stopped) result.artifacts.push_back(finetune::save_trained_tensors(trainer, spec.artifact_dir));
      }
      if (!outcome.discarded_checkpoint.empty()) {
        std::cerr << "cdmoe-sweep: worker " << rank << ": candidate " << task.candidate_id << " starts its fine-tune over: "
                  << outcome.discarded_checkpoint << "\n";
      }
      if (outcome.stopped) throw_runtime("stopped by a signal after step " + std::to_string(outcome.position.step) + " (checkpointed)");
      eval::EvaluationRequest request = full;
      if (!task.params.value(kMeasureSpeedParam, true)) request.speed = false;  // the parent's is recorded
      if (trainer_options.mode != finetune::TrainMode::kCondensed) {
        // The control changed the original model itself: divergence and speed-up against "the
        // original" would compare it with itself, and the layer cache holds the untrained states.
        request.calibration.reset();
        request.calibration_cache = nullptr;
      }
      result.metrics = eval::evaluate(*model, *tokenizer, task.plan, request);
    } catch (...) {
      restore();
      throw;
    }
    restore();
    result.finetune_steps = outcome.position.steps();
    for (Metric& metric : finetune::finetune_metrics(outcome.position, outcome.resumed_from)) result.metrics.push_back(metric);
    return result;
  }
};

Worker::Worker(const WorkerOptions& options, int rank) : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.options = options;
  w.rank = rank;
  w.model = model::MoeModel::load(options.model_dir, at::Device(options.device), model::compute_dtype_named(options.dtype));
  w.tokenizer = model::Tokenizer::load(options.tokenizer_dir.empty() ? options.model_dir : options.tokenizer_dir);
  eval::CalibrationSet calibration = eval::load_calibration(options.calib_path, *w.tokenizer, options.calib);
  for (const std::string& spec : options.tasks) {
    w.full.tasks.push_back(eval::load_task(spec, options.benchmarks_dir, options.task_limit));
  }
  w.full.task_average = options.task_average;
  w.full.special_tokens = options.special_tokens;
  if (!options.held_out_path.empty()) {
    w.full.held_out = eval::load_calibration(options.held_out_path, *w.tokenizer, options.calib);
  }
  w.full.calibration = calibration;
  w.full.divergence = options.full_divergence;
  w.full.divergence_mean = options.divergence_mean;
  w.full.speed = true;
  w.full.speed_options = options.speed;
  w.full.batch_size = options.batch_size;

  auto [ids, mask] = eval::pad_batch(calibration.sequences);
  // --cache-mb covers both caches: a quarter for the model's condensed layers (fused MLPs, one
  // per distinct condensed layer run), the rest for the layer cache (boundaries, expert outputs).
  const int64_t condensed_share = options.cache_bytes / 4;
  w.model->limit_condensed_cache(condensed_share);
  w.cache = std::make_unique<eval::LayerCache>(*w.model, ids, mask, Plan(), options.cache_bytes - condensed_share);
  w.cache->set_divergence_mean(options.divergence_mean);
  w.full.calibration_cache = w.cache.get();  // full evaluations' divergence reuses the original's boundaries
  w.full.cache_bytes = options.cache_bytes;
  // The average routing weights that condense ops without explicit weights use (ARCHITECTURE.md
  // §2): measured on the documents whole, or by the forward that fills the cache's boundaries.
  if (options.routing_full_documents) {
    eval::CalibrationOptions whole = options.calib;
    whole.packed = false;
    whole.seq_len = w.model->shape().max_position_embeddings;
    eval::measure_router_statistics(*w.model, eval::load_calibration(options.calib_path, *w.tokenizer, whole).sequences,
                                    options.batch_size * options.calib.seq_len);
  }
  w.model->collect_router_stats(!options.routing_full_documents);
  w.cache->boundary(w.cache->num_layers());
  w.model->collect_router_stats(false);
}

Worker::~Worker() = default;

const std::string& Worker::device() const { return impl_->options.device; }
const std::string& Worker::dtype() const { return impl_->options.dtype; }

std::vector<ExpertRouting> Worker::routing() const { return impl_->model->router_stats().to_rows(); }

Result Worker::run(const Task& task) {
  auto start = std::chrono::steady_clock::now();
  Result result;
  try {
    if (task.kind == "search") {
      result = impl_->search(task);
    } else if (task.kind == "full_eval") {
      result = impl_->full_eval(task);
    } else if (task.kind == "finetune") {
      result = impl_->finetune(task);
    } else if (task.kind != "noop") {
      throw_runtime("unknown task kind \"" + task.kind + "\"");
    }
  } catch (const std::exception& e) {
    result = Result();
    result.ok = false;
    result.error = e.what();
  }
  result.candidate_id = task.candidate_id;
  result.worker_rank = impl_->rank;
  result.worker_host = host_name();
  result.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cdmoe::worker
