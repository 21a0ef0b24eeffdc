#include "worker/worker.h"

#include <chrono>
#include <cstdlib>
#include <sstream>

#include <ATen/ATen.h>

#include "comm/transport.h"
#include "core/error.h"
#include "core/objectives.h"
#include "eval/evaluation.h"
#include "eval/layer_cache.h"
#include "model/moe_model.h"
#include "model/tokenizer.h"

namespace cdmoe::worker {
namespace {

// Whether the comma-separated test hook list in `variable` names this candidate (on this rank).
bool hook_names(const char* variable, int64_t candidate_id, int rank) {
  const char* value = std::getenv(variable);
  if (!value) return false;
  std::stringstream list(value);
  std::string item;
  while (std::getline(list, item, ',')) {
    size_t at = item.find('@');
    if (std::atoll(item.substr(0, at).c_str()) != candidate_id) continue;
    if (at == std::string::npos || std::atoi(item.c_str() + at + 1) == rank) return true;
  }
  return false;
}

}  // namespace

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
    double value = eval::measure_objective(*cache, info, scope, task.plan, fraction);
    Result result;
    result.metrics.push_back(Metric{metric, value, info.unit});
    return result;
  }

  Result full_eval(const Task& task) {
    Result result;
    result.metrics = eval::evaluate(*model, *tokenizer, task.plan, full);
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
  if (!options.held_out_path.empty()) {
    w.full.held_out = eval::load_calibration(options.held_out_path, *w.tokenizer, options.calib);
  }
  w.full.calibration = calibration;
  w.full.divergence = options.full_divergence;
  w.full.speed = true;
  w.full.speed_repeats = options.speed_repeats;
  w.full.batch_size = options.batch_size;

  auto [ids, mask] = eval::pad_batch(calibration.sequences);
  w.cache = std::make_unique<eval::LayerCache>(*w.model, ids, mask, Plan(), options.cache_bytes);
  w.full.calibration_cache = w.cache.get();  // full evaluations' divergence reuses the original's boundaries
  w.full.cache_bytes = options.cache_bytes;
  // One forward of the original model fills the cache's boundaries and measures the average
  // routing weights that condense ops without explicit weights use (ARCHITECTURE.md §2).
  w.model->collect_router_stats(true);
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
    if (hook_names("CDMOE_TEST_CRASH", task.candidate_id, impl_->rank)) std::abort();
    if (hook_names("CDMOE_TEST_FAIL", task.candidate_id, impl_->rank)) throw_runtime("injected failure (CDMOE_TEST_FAIL)");
    if (task.kind == "search") {
      result = impl_->search(task);
    } else if (task.kind == "full_eval") {
      result = impl_->full_eval(task);
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
  result.worker_host = comm::host_name();
  result.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cdmoe::worker
