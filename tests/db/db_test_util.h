// Fixtures for the db tests: a store with one sweep, and results with a fixed metric set.
#pragma once

#include <string>
#include <vector>

#include "core/messages.h"
#include "db/store.h"

namespace cdmoe::testing {

inline db::SweepSpec test_sweep(const std::string& name) {
  db::SweepSpec spec;
  spec.name = name;
  spec.strategy = "cdmoe";
  spec.config = Json{{"model", "/models/tiny"}, {"seed", 7}, {"budgets", "layers:1-4"}};
  spec.seed = 7;
  spec.model_path = "/models/tiny";
  spec.model_hash = std::string(64, 'a');
  spec.data_hashes = Json{{"calib.jsonl", std::string(64, 'b')}};
  return spec;
}

// A candidate per stage name with the original plan (so (stage, plan) is unique).
inline std::vector<db::CandidateSpec> numbered_candidates(int first, int count) {
  std::vector<db::CandidateSpec> specs;
  for (int i = first; i < first + count; ++i) specs.push_back({"stage_" + std::to_string(i), "test", Plan(), {}, ""});
  return specs;
}

// A DONE result with `metric_count` metrics m0..m{n-1} whose values derive from the id.
inline Result result_with_metrics(int64_t candidate_id, int metric_count = 10) {
  Result result;
  result.candidate_id = candidate_id;
  result.worker_rank = 1;
  result.worker_host = "worker-host";
  result.elapsed_s = 0.25;
  for (int m = 0; m < metric_count; ++m) {
    result.metrics.push_back({"m" + std::to_string(m), double(candidate_id) + m / 100.0, "ratio"});
  }
  return result;
}

}  // namespace cdmoe::testing
