// Worker: what a worker rank holds resident for a whole sweep (the model, tokenizer,
// calibration set with its layer cache and router statistics, task data) and how it runs one
// Task (ARCHITECTURE.md §1). Task kinds:
//   "search"     params {divergence, scope, calib_fraction, metric, incumbent?}: one objective
//                value (eval::measure_objective through the layer cache) as metric `metric`;
//                `incumbent`, the plan the candidate extends, lets a model-scope candidate run
//                from the layer where the two differ (the value is the same without it);
//   "full_eval"  every metric of eval::evaluate: tasks, perplexity, divergence from the
//                original, parameter and peak memory, speed-up against the original (A B A B);
//   "finetune"   params core/finetune_task.h: fine-tunes the plan's condensed layers (or, for the
//                control, the original model's MoE blocks of the given layers), resuming from
//                the candidate's checkpoint when one exists, then every metric of "full_eval"
//                on the fine-tuned model (the control without divergence and speed-up) plus
//                finetune_loss and the loss curve. The model is put back as it was afterwards.
//   "noop"       nothing (measures dispatch overhead).
// run() never throws: a failing task becomes a FAILED result carrying the message, and the
// worker carries on. (What the coordinator does with failures, crashes and retries is tested
// with scripted workers: tests/coordinator/coordinator_test.cc.)
// Not thread-safe: one thread owns a Worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/messages.h"
#include "core/objectives.h"
#include "eval/speed_options.h"
#include "eval/text_data.h"

namespace cdmoe::worker {

struct WorkerOptions {
  std::string model_dir;
  std::string tokenizer_dir;                // default: model_dir
  std::string calib_path;                   // calibration text (divergences, router statistics, speed)
  eval::CalibrationOptions calib;           // samples, seq_len, packed, seed
  bool routing_full_documents = false;      // router statistics on the chosen documents whole (up to max positions)
  std::string held_out_path;                // perplexity text; empty: none
  std::vector<std::string> tasks;           // piqa, arc_easy, FILE.jsonl
  std::string benchmarks_dir;               // where piqa/arc_easy live
  int64_t task_limit = 0;                   // first N items per task (0: all)
  std::string task_average = "acc";         // eval::TaskAverage: the metric task_acc_mean averages
  eval::RequestSpecialTokens special_tokens = eval::RequestSpecialTokens::kNone;  // in task requests
  int64_t batch_size = 8;                   // sequences per forward in task scoring
  int64_t cache_bytes = int64_t(4) << 30;   // layer cache + condensed-layer cache cap (0: --no-layer-cache)
  std::string full_divergence = "js-logits";  // the divergence reported by full evaluations
  DivergenceMean divergence_mean = DivergenceMean::kToken;  // every divergence's mean: over tokens or per sequence
  eval::SpeedOptions speed;                 // how full evaluations time the speed-up
  std::string device = "cpu";               // where the model computes: "cpu" or "cuda:N" (model/device.h)
  std::string dtype = "float32";            // its compute dtype: "float32" or "bfloat16"
  const std::atomic<int>* stop = nullptr;   // set by a stop signal: a fine-tune checkpoints and stops
};

class Worker {
 public:
  // Loads everything (bad input errors name the file); measures router statistics.
  Worker(const WorkerOptions& options, int rank);
  ~Worker();
  Result run(const Task& task);
  // The router statistics measured on starting, by layer then expert (shared gates last).
  std::vector<ExpertRouting> routing() const;
  const std::string& device() const;
  const std::string& dtype() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdmoe::worker
