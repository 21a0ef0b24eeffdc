// Read-only queries behind cdmoe-report, each returning a generic table (column names + cells)
// so the caller only formats. Take a connection opened kReadOnly; never write.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/messages.h"
#include "db/sqlite.h"

namespace cdmoe::db {

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

// One row per sweep with candidate counts by state.
Table sweeps_table(Connection& connection);
// The sweep's candidates in id order, optionally only those in `state`.
Table candidates_table(Connection& connection, const std::string& sweep, std::optional<CandidateState> state);
// The sweep's Pareto front (the `pareto` view), columns named after the sweep's axis metrics
// (and the speed axis' 95% interval, <speed>_ci_low/_ci_high: NULL where none was measured),
// most accurate first.
Table pareto_table(Connection& connection, const std::string& sweep);

// The router statistics of the sweep's original model (`router_stats`), by layer then expert:
// tokens routed to each expert, their share of the layer's routed tokens and the average gate
// weight; expert -1 is a shared expert's gate.
Table router_table(Connection& connection, const std::string& sweep);

// The router statistics stored for the sweep that candidate `candidate_id` belongs to (what its
// condense ops without explicit weights were measured with); empty when it has none.
std::vector<ExpertRouting> candidate_sweep_routing(Connection& connection, int64_t candidate_id);

// The canonical plan JSON of a candidate; bad input when there is no such candidate.
std::string candidate_plan_json(Connection& connection, int64_t candidate_id);

// Where a candidate comes from: its sweep (id and name), method, stage and budget, and what the
// sweep recorded of its model (fingerprint, stored config); bad input when there is no such
// candidate.
struct CandidateOrigin {
  int64_t sweep_id = 0;
  std::string sweep, method, stage, budget;
  std::string model_hash, sweep_config_json;
};
CandidateOrigin candidate_origin(Connection& connection, int64_t candidate_id);

// What a model card says of a candidate: its row, its sweep's provenance, and its metrics (by
// name, with units; a stored NULL as NaN). Bad input when there is no such candidate.
struct CandidateRecord {
  std::string stage, method, budget, state, finished_at;
  std::string sweep, git_commit, model_hash, config_hash, data_hashes, started_at;
  std::vector<Metric> metrics;
};
CandidateRecord candidate_record(Connection& connection, int64_t candidate_id);

// Bad input unless `fingerprint` (model::Checkpoint's, of --model `model_dir`) is the model the
// candidate's sweep recorded.
void require_sweep_model(const CandidateOrigin& origin, const std::string& fingerprint, const std::string& model_dir,
                         const std::string& db_path);

// The files the candidate's result left (schema 7), path resolved against the database's
// directory; empty for a candidate without any.
std::vector<Artifact> candidate_artifacts(Connection& connection, int64_t candidate_id);

// Id of the named sweep; bad input listing the sweeps there are when it does not exist.
int64_t require_sweep_id(Connection& connection, const std::string& sweep);

}  // namespace cdmoe::db
