// One evaluation of (model, plan): every metric a worker records for a budget point, as named
// values with units (core's Metric), computed by the registered metrics (eval/metrics.h) whose
// inputs the request has, or those it names. Metric names:
//   <task>_acc, <task>_acc_stderr, <task>_acc_norm, <task>_acc_norm_stderr (where lm-eval
//   reports acc_norm), <task>_<group or subject>_acc[_stderr] (MMLU), task_acc_mean (ratio:
//   the mean over tasks of the metric --task-average names)
//   perplexity (""), nll_per_token (nats)                        on held-out text
//   <divergence>_model, e.g. js_logits_model (unit: core/objectives.h) vs the original, calibration text
//   param_bytes, param_bytes_materialised (bytes, in the compute dtype), param_ratio (ratio),
//   peak_rss_bytes (bytes)
//   peak_cuda_allocated_bytes (bytes)                            a model on CUDA, this evaluation
//   tokens_per_s (tokens_per_s), speedup, speedup_ci_low, speedup_ci_high (ratio: the 95%
//   interval, NaN with one pair), speed_pairs (""), speed_tokens  interleaved pairs against the original
//                                                                (eval/speed_options.h)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/messages.h"
#include "core/objectives.h"
#include "eval/task_samples.h"
#include "eval/tasks.h"
#include "eval/speed_options.h"
#include "eval/text_data.h"
#include "model/moe_model.h"
#include "model/tokenizer.h"

namespace cdmoe::eval {

class LayerCache;

struct EvaluationRequest {
  std::vector<Task> tasks;
  std::string task_average = "acc";  // which metric of each task enters task_acc_mean (TaskAverage)
  RequestSpecialTokens special_tokens = RequestSpecialTokens::kNone;  // in task requests (text_data.h)
  std::optional<CalibrationSet> held_out;     // perplexity
  std::optional<CalibrationSet> calibration;  // divergence and speed
  std::string divergence = "js-logits";  // a name of core/objectives.h
  DivergenceMean divergence_mean = DivergenceMean::kToken;  // its mean over tokens or per sequence
  // The divergence runs through this cache when it is given (it must hold `calibration` under
  // the original model, as a worker's does; not owned); otherwise through a cache of its own
  // under cache_bytes (--cache-mb).
  LayerCache* calibration_cache = nullptr;
  int64_t cache_bytes = int64_t(1) << 32;
  bool speed = false;
  SpeedOptions speed_options;
  int64_t batch_size = 8;
  // When given (not owned), each task's per-item log-likelihoods are appended here (cdmoe-eval
  // --samples; eval/task_samples.h).
  std::vector<TaskSamples>* samples = nullptr;
  bool progress = false;  // done/total, rate and ETA per task on stderr
  // Registered metrics to compute (eval/metrics.h); empty: every one whose inputs are here.
  // A named one whose inputs are missing is bad input.
  std::vector<std::string> metrics;
};

// A runtime error naming the metric when one is not finite (a model whose weights or activations
// overflowed: nothing it scores is a result), except the speed-up's interval bounds, which are
// NaN when one pair was timed.
std::vector<Metric> evaluate(const model::MoeModel& model, const model::Tokenizer& tokenizer, const Plan& plan,
                             const EvaluationRequest& request);

}  // namespace cdmoe::eval
