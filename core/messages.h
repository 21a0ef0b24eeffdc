// What the coordinator sends a worker (Task) and gets back (Result), and their JSON form, which
// is also their wire form over MPI. Metric names are lower_snake_case and carry their unit in
// `unit` ("bytes", "s", "tokens_per_s", "ratio", "nats", "" for pure numbers); values are
// doubles, non-finite ones travel as JSON null and come back as NaN.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/plan.h"

namespace cdmoe {

enum class CandidateState { kWaiting, kRunning, kDone, kFailed, kPreempted };

const char* candidate_state_name(CandidateState state);  // "WAITING", "RUNNING", ...
CandidateState parse_candidate_state(const std::string& name, const std::string& where);

struct Metric {
  std::string name;
  double value = 0;
  std::string unit;
};

// Metric names become column names of the `results` view: [a-z][a-z0-9_]*, at most 64 chars.
bool is_valid_metric_name(const std::string& name);

// Whether a metric measures this run rather than the plan: timings (tokens_per_s, speedup and
// its interval and pair count) and the process's memory (peak_rss_bytes, a CUDA peak). The rest
// are deterministic given the model, plan and data; tests compare runs on those.
bool run_dependent_metric(const std::string& name);

struct FinetuneStep {
  int64_t step = 0;
  double loss = 0;
  double learning_rate = 0;
  int64_t tokens = 0;
};

// A held-out evaluation during fine-tuning: the mean loss (nats per target token) over the
// held-out text whose content hash is data_hash, after after_steps optimizer steps.
struct HeldOutLoss {
  int64_t after_steps = 0;
  double loss = 0;
  int64_t tokens = 0;
  std::string data_hash;
};

// A file a task left behind for its candidate (schema 7's artifacts): `path` relative to the
// database's directory, the file's sha256 and size.
struct Artifact {
  std::string kind;  // "trained_tensors"
  std::string path;
  std::string sha256;
  int64_t bytes = 0;
};

struct Task {
  int64_t candidate_id = 0;
  std::string kind;               // "search", "full_eval", "finetune", "noop", ...
  Plan plan;
  Json params = Json::object();  // kind-specific parameters (objective, data, limits)
  int attempt = 1;               // 1 for the first dispatch
};

struct Result {
  int64_t candidate_id = 0;
  bool ok = true;  // false: the task failed and `error` says why
  std::vector<Metric> metrics;
  std::vector<FinetuneStep> finetune_steps;
  std::vector<HeldOutLoss> held_out_losses;
  std::vector<Artifact> artifacts;  // recorded with the result when it is ok
  std::string error;
  int worker_rank = 0;
  std::string worker_host;
  double elapsed_s = 0;
};

// How one MoE layer's router used one routed expert over the calibration text, original model,
// padding excluded: tokens sent to it (top-k) and their average gate weight, the w̄ a condense op
// uses when a plan gives no weights (ARCHITECTURE.md §2). expert -1 is the shared expert's gate
// (qwen2_moe): tokens is every token of the layer, average_weight the mean sigmoid(gate).
struct ExpertRouting {
  int layer = 0;
  int expert = 0;
  double tokens = 0;
  double average_weight = 0;
};

// A worker's first message: ready (its model and data are loaded) or not, and why; with the
// router statistics it measured on starting, and where it computes (provenance of its timings).
struct Hello {
  bool ok = true;
  std::string host;
  std::string error;
  std::vector<ExpertRouting> routing;
  std::string device;  // "cpu" or "cuda:N"
  std::string dtype;   // compute dtype: "float32" or "bfloat16"
  int threads = 0;     // CPU compute threads
  int rank = -1;       // the worker's own rank (0 for a one-rank sweep's in-process worker); -1: unknown
};

Json hello_to_json(const Hello& hello);
Hello hello_from_json(const Json& json, const std::string& where);
Json task_to_json(const Task& task);
Task task_from_json(const Json& json, const std::string& where);
Json result_to_json(const Result& result);
Result result_from_json(const Json& json, const std::string& where);

}  // namespace cdmoe
