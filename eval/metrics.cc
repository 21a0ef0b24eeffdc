#include "eval/metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include "core/error.h"
#include "core/objectives.h"
#include "core/paired_ratio.h"
#include "core/param_count.h"
#include "core/progress.h"
#include "eval/device_memory.h"
#include "eval/divergence.h"
#include "eval/layer_cache.h"
#include "eval/loglikelihood.h"

namespace cdmoe::eval {
namespace {

void task_metrics(const MetricInputs& in, std::vector<Metric>& out) {
  const auto& [model, tokenizer, plan, request] = in;
  TaskAverage average(request.task_average);
  double average_sum = 0;
  const int64_t max_length = model.shape().max_position_embeddings;
  for (const Task& task : request.tasks) {
    std::vector<ContinuationRequest> requests;
    for (size_t i = 0; i < task.items.size(); ++i) {
      for (const auto& [context_text, continuation_text] : item_requests(task.items[i])) {
        auto [context, continuation] = encode_pair(tokenizer, context_text, continuation_text, request.special_tokens);
        // lm-evaluation-harness's _loglikelihood_tokens scores (context + continuation)[-(max_length
        // + 1):]: a request longer than the model's context loses its context's first tokens;
        // a continuation longer than the context itself cannot be scored (lm-eval asserts).
        if (int64_t(continuation.size()) > max_length) {
          throw_bad_input("task " + task.name + " item " + std::to_string(i + 1) + ": a choice of " +
                          std::to_string(continuation.size()) + " tokens is longer than the model's max_position_embeddings " +
                          std::to_string(max_length));
        }
        const int64_t over = int64_t(context.size() + continuation.size()) - (max_length + 1);
        if (over > 0) context.erase(context.begin(), context.begin() + over);
        requests.push_back({context, continuation});
      }
    }
    Progress progress(task_metric_prefix(task.name) + " requests", int64_t(requests.size()), request.progress);
    std::vector<ContinuationScore> scores = continuation_loglikelihoods(model, plan, requests, request.batch_size,
                                                                        [&](int64_t done) { progress.update(done); });
    std::vector<std::vector<double>> per_item;
    size_t next = 0;
    for (const TaskItem& item : task.items) {
      std::vector<double> ll;
      for (size_t c = 0; c < item.choices.size(); ++c) {
        // NaN compares false with everything: the first choice would "win" every item.
        if (!std::isfinite(scores[next].loglikelihood)) {
          throw_runtime("task " + task.name + " item " + std::to_string(per_item.size() + 1) + " choice " + std::to_string(c) +
                        ": the log-likelihood is not finite (" + std::to_string(scores[next].loglikelihood) +
                        "): the model's weights or activations under this plan are not finite");
        }
        ll.push_back(scores[next++].loglikelihood);
      }
      per_item.push_back(std::move(ll));
    }
    TaskScores s = score_task(task, per_item);
    if (request.samples) request.samples->push_back({task.name, std::move(per_item)});
    std::string prefix = task_metric_prefix(task.name);
    out.push_back({prefix + "_acc", s.acc, "ratio"});
    out.push_back({prefix + "_acc_stderr", s.acc_stderr, "ratio"});
    if (task.reports_acc_norm) {
      out.push_back({prefix + "_acc_norm", s.acc_norm, "ratio"});
      out.push_back({prefix + "_acc_norm_stderr", s.acc_norm_stderr, "ratio"});
    }
    for (const auto* parts : {&s.groups, &s.subjects}) {
      for (const auto& [part, accuracy] : *parts) {
        out.push_back({prefix + "_" + part + "_acc", accuracy.acc, "ratio"});
        out.push_back({prefix + "_" + part + "_acc_stderr", accuracy.acc_stderr, "ratio"});
      }
    }
    average_sum += average.metric_for(prefix, task.reports_acc_norm) == "acc_norm" ? s.acc_norm : s.acc;
  }
  if (!request.tasks.empty()) out.push_back({"task_acc_mean", average_sum / double(request.tasks.size()), "ratio"});
}

void perplexity(const MetricInputs& in, std::vector<Metric>& out) {
  const auto& [model, tokenizer, plan, request] = in;
  NllSum total;
  const auto& sequences = request.held_out->sequences;
  for (size_t first = 0; first < sequences.size(); first += size_t(request.batch_size)) {
    std::vector<std::vector<int64_t>> batch(sequences.begin() + long(first),
                                            sequences.begin() + long(std::min(sequences.size(), first + size_t(request.batch_size))));
    auto [ids, mask] = pad_batch(batch);
    at::Tensor hidden = model.run_layers(model.embed(ids), mask, 0, int(model.shape().num_layers), plan);
    NllSum part = next_token_nll(model.final_norm(hidden), model.lm_head_weight(), ids, mask);
    total.nll += part.nll;
    total.tokens += part.tokens;
  }
  if (total.tokens == 0) throw_bad_input("held-out text gives no token to predict (sequences of one token)");
  out.push_back({"nll_per_token", total.nll / double(total.tokens), "nats"});
  out.push_back({"perplexity", std::exp(total.nll / double(total.tokens)), ""});
}

// The speed workload's batch: the calibration batch, or the paper's single 2,000-token prefill.
std::pair<at::Tensor, at::Tensor> speed_batch(const model::MoeModel& model, const EvaluationRequest& request) {
  if (request.speed_options.workload == "calibration") return pad_batch(request.calibration->sequences);
  if (model.shape().max_position_embeddings < kPrefillTokens) {
    throw_bad_input("--speed-workload prefill-2000: the model's max_position_embeddings " +
                    std::to_string(model.shape().max_position_embeddings) + " is below 2,000 tokens");
  }
  std::vector<int64_t> text;
  for (const auto& sequence : request.calibration->sequences) text.insert(text.end(), sequence.begin(), sequence.end());
  if (text.empty()) throw_bad_input("--speed-workload prefill-2000: the calibration text has no tokens");
  std::vector<int64_t> prefill(static_cast<size_t>(kPrefillTokens));
  for (size_t i = 0; i < prefill.size(); ++i) prefill[i] = text[i % text.size()];
  return pad_batch({prefill});
}

// The speed metrics: tokens/s of the plan (`tokens` per forward of `seconds`), the speed-up with
// its interval and pair count (0: by definition, not measured), and the workload's tokens.
void push_speed_metrics(std::vector<Metric>& out, double tokens, double seconds, const RatioInterval& speedup) {
  out.push_back({"tokens_per_s", tokens / seconds, "tokens_per_s"});
  out.push_back({"speedup", speedup.ratio, "ratio"});
  out.push_back({"speedup_ci_low", speedup.low, "ratio"});
  out.push_back({"speedup_ci_high", speedup.high, "ratio"});
  out.push_back({"speed_pairs", double(speedup.pairs), ""});
  out.push_back({"speed_tokens", tokens, "tokens"});
}

void speed(const MetricInputs& in, std::vector<Metric>& out) {
  const auto& [model, tokenizer, plan, request] = in;
  const SpeedOptions& options = request.speed_options;
  auto [ids, mask] = speed_batch(model, request);
  auto timed = [&](const Plan& p) {
    auto start = std::chrono::steady_clock::now();
    model.logits(ids, mask, p);
    if (model.device().is_cuda()) torch::cuda::synchronize(model.device().index());  // kernels run asynchronously
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto median = [](std::vector<double> times) {
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  };
  int64_t tokens = mask.sum().item<int64_t>();
  timed(Plan());  // warm-up, and materialises the condensed layers before timing
  if (plan.layers().empty()) {
    // The original against itself: the speed-up is 1 by definition (measuring it would only
    // report noise, 0.87-1.0 on this machine); every timing counts towards its tokens/s.
    std::vector<double> times;
    for (int r = 0; r < 2 * options.min_pairs; ++r) times.push_back(timed(plan));
    RatioInterval one;
    one.ratio = one.low = one.high = 1.0;
    push_speed_metrics(out, double(tokens), median(times), one);
    return;
  }
  timed(plan);
  // Interleaved pairs, the order alternating (a first-in-pair effect hits both sides alike),
  // until the interval is tight enough or the time is up.
  PairedRatio ratio;
  std::vector<double> candidate;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (ratio.pairs() < options.min_pairs ||
         (ratio.interval().relative_half_width() > options.target && elapsed() < options.max_seconds)) {
    double t_original = 0, t_candidate = 0;
    if (ratio.pairs() % 2 == 0) {
      t_original = timed(Plan());
      t_candidate = timed(plan);
    } else {
      t_candidate = timed(plan);
      t_original = timed(Plan());
    }
    ratio.add(t_original, t_candidate);
    candidate.push_back(t_candidate);
  }
  RatioInterval r = ratio.interval();
  if (r.pairs < 2) r.low = r.high = NAN;  // one pair: no interval
  push_speed_metrics(out, double(tokens), median(candidate), r);
}

void divergence(const MetricInputs& in, std::vector<Metric>& out) {
  const auto& [model, tokenizer, plan, request] = in;
  const DivergenceInfo& info = find_divergence(request.divergence, "divergence");
  double value = 0;
  LayerCache* shared_cache = request.calibration_cache;
  if (shared_cache && shared_cache->base().layers().empty()) {  // the worker's cache of the original's boundaries
    shared_cache->set_divergence_mean(request.divergence_mean);
    value = measure_objective(*shared_cache, info, "model", plan);
  } else {
    auto [ids, mask] = pad_batch(request.calibration->sequences);
    LayerCache cache(model, ids, mask, Plan(), request.cache_bytes);
    cache.set_divergence_mean(request.divergence_mean);
    value = measure_objective(cache, info, "model", plan);
  }
  out.push_back({divergence_metric_name(info, "model"), value, info.unit});
}

void memory(const MetricInputs& in, std::vector<Metric>& out) {
  const auto& [model, tokenizer, plan, request] = in;
  int64_t materialised = 0;
  for (const auto& [name, tensor] : model.materialise(plan)) materialised += tensor.numel();
  Plan held = model.fixed_plan();  // an exported checkpoint holds its own plan already
  for (const auto& [layer, layer_plan] : plan.layers()) held.set_layer(layer, layer_plan);
  const int64_t element = int64_t(c10::elementSize(model.dtype()));  // the compute dtype's, as held
  out.push_back({"param_bytes", double(count_parameters(model.shape(), held).total() * element), "bytes"});
  out.push_back({"param_bytes_materialised", double(materialised * element), "bytes"});
  out.push_back({"param_ratio", parameter_ratio(model.shape(), held), "ratio"});
  out.push_back({"peak_rss_bytes", double(peak_rss_bytes()), "bytes"});
  if (auto peak = peak_device_allocated_bytes(model.device())) out.push_back({"peak_cuda_allocated_bytes", double(*peak), "bytes"});
}

}  // namespace

const std::vector<MetricDefinition>& registered_metrics() {
  static const std::vector<MetricDefinition> metrics = {
      {"tasks", "<task>_acc, _acc_stderr, _acc_norm, _acc_norm_stderr, task_acc_mean", "tasks",
       [](const EvaluationRequest& r) { return !r.tasks.empty(); }, task_metrics},
      {"perplexity", "perplexity, nll_per_token", "held-out text", [](const EvaluationRequest& r) { return r.held_out.has_value(); },
       perplexity},
      {"divergence", "<divergence>_model (from the original)", "calibration text",
       [](const EvaluationRequest& r) { return r.calibration.has_value(); }, divergence},
      {"speed", "tokens_per_s, speedup, speedup_ci_low, speedup_ci_high, speed_pairs, speed_tokens (interleaved pairs against the original)",
       "calibration text and speed on",
       [](const EvaluationRequest& r) { return r.calibration.has_value() && r.speed; }, speed},
      {"memory", "param_bytes, param_bytes_materialised, param_ratio, peak_rss_bytes (+ peak_cuda_allocated_bytes on CUDA)",
       "nothing",
       [](const EvaluationRequest&) { return true; }, memory},
  };
  return metrics;
}

const MetricDefinition& find_metric(const std::string& name) {
  std::string known;
  for (const MetricDefinition& metric : registered_metrics()) {
    if (metric.name == name) return metric;
    known += (known.empty() ? "" : ", ") + metric.name;
  }
  throw_bad_input("unknown metric \"" + name + "\" (registered: " + known + ")");
}

}  // namespace cdmoe::eval
