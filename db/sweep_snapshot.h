// SweepSnapshot: everything the HTML report draws of one sweep, read from the database in one
// read transaction (a consistent view while the sweep is still writing). Plain values, no
// rendering; the one place the report's SQL lives. Read-only: takes a kReadOnly connection.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/messages.h"
#include "db/sqlite.h"

namespace cdmoe::db {

struct SnapshotCandidate {
  int64_t id = 0;
  std::string stage, method, budget, plan_json;
  std::optional<int64_t> parent_id;
  CandidateState state = CandidateState::kWaiting;
  std::map<std::string, double> metrics;  // finite values only (NULL is not a number to draw)
};

struct FinetuneStep {
  int64_t step = 0;
  double loss = 0, lr = 0;
  int64_t tokens = 0;
};

struct SweepSnapshot {
  // Provenance (the sweeps row).
  std::string name, state, strategy, config_json, git_commit, host, model_path, model_hash, data_hashes;
  std::string started_at, finished_at;
  int64_t seed = 0;
  std::string accuracy_axis, memory_axis, speed_axis;  // the sweep's Pareto axes (metric names)
  std::vector<SnapshotCandidate> candidates;            // every candidate, by id
  std::map<std::string, std::string> units;             // metric name -> unit, for those present
  std::vector<int64_t> pareto_ids;                      // the `pareto` view's candidates
  std::vector<ExpertRouting> routing;                   // router_stats, by layer then expert
  std::map<int64_t, std::vector<FinetuneStep>> finetune;  // candidate -> steps in order
  std::map<int64_t, std::vector<HeldOutLoss>> held_out;   // candidate -> held-out losses by data, then step

  bool finished() const { return state == "DONE"; }
  const SnapshotCandidate* find(int64_t id) const;
};

// Bad input naming the database and the sweeps it has when `sweep` is not one of them.
SweepSnapshot read_sweep_snapshot(Connection& connection, const std::string& sweep);

}  // namespace cdmoe::db
