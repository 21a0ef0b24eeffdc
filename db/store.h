// Store: the results database as the coordinator writes it (the only writer, ARCHITECTURE.md §5).
// Every public write is one transaction: a result and all its metrics, steps and its event
// commit together or not at all, so a reader never sees half a result. Not thread-safe: one
// thread owns a Store; readers open their own connection (open_database, kReadOnly).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/json_fields.h"
#include "core/messages.h"
#include "db/sqlite.h"

namespace cdmoe::db {

// The stages of fine-tuned candidates: the sweep's own (one per condensing budget point and the
// control), and those cdmoe-train records into a sweep: candidates of their own, outside the
// unique key the sweep admits its candidates by (db/schema.cc, version 5, names it too).
inline constexpr const char* kFinetuneStage = "finetune";
inline constexpr const char* kManualFinetuneStage = "train";

// Which metrics the `pareto` view compares, per sweep.
struct ParetoAxes {
  std::string accuracy = "task_acc_mean";  // maximised
  std::string memory = "param_bytes";      // minimised
  std::string speed = "speedup";           // maximised
};

// Provenance recorded when a sweep starts. git commit, host and start time are filled in.
struct SweepSpec {
  std::string name;
  std::string strategy;
  Json config = Json::object();  // stored canonical (sorted keys) with its sha256
  int64_t seed = 0;
  std::string model_path;
  std::string model_hash;
  Json data_hashes = Json::object();  // data file -> sha256
  ParetoAxes axes;
};

struct SweepRow {
  int64_t id = 0;
  std::string name, state, strategy, config_json, config_hash, git_commit, host;
  std::string model_path, model_hash, started_at, finished_at;
  int64_t seed = 0;
};

struct CandidateSpec {
  std::string stage;
  std::string method;
  Plan plan;
  std::optional<int64_t> parent_id;
  std::string budget;  // empty: none
};

struct CandidateRow {
  int64_t id = 0;
  int64_t sweep_id = 0;
  std::string stage, method, plan_json, plan_hash, budget, error;
  std::optional<int64_t> parent_id;
  CandidateState state = CandidateState::kWaiting;
  int attempts = 0;
};

class Store {
 public:
  // Opens or creates the database at `path` read-write (see database.h for the checks).
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  std::optional<SweepRow> find_sweep(const std::string& name);
  // Creates the sweep in state RUNNING and logs `sweep_start`; the name must be new.
  int64_t create_sweep(const SweepSpec& spec);
  // RUNNING again (resume) or a final state (DONE, FAILED, PREEMPTED, which sets finished_at).
  void set_sweep_state(int64_t sweep_id, const std::string& state);

  // Adds WAITING candidates in one transaction; a candidate whose (stage, plan) the sweep
  // already has is not added again and its existing id is returned in its place.
  std::vector<int64_t> add_candidates(int64_t sweep_id, const std::vector<CandidateSpec>& specs);
  std::vector<CandidateRow> candidates(int64_t sweep_id, std::optional<CandidateState> state = std::nullopt);

  // Commits attempts+1 and RUNNING before the task leaves, so a task that crashes the job
  // every time runs out of attempts instead of looping. Only WAITING or PREEMPTED candidates
  // can be dispatched (a retry is requeued to WAITING first); anything else is an error.
  struct Dispatch {
    int64_t candidate_id = 0;
    int worker_rank = 0;
    std::string worker_host;
  };
  void mark_dispatched(const std::vector<Dispatch>& dispatches);  // one transaction
  void mark_dispatched(int64_t candidate_id, int worker_rank, const std::string& worker_host) {
    mark_dispatched({Dispatch{candidate_id, worker_rank, worker_host}});
  }
  // DONE (ok) or FAILED results, each with its metrics, fine-tuning steps and event; the whole
  // batch is one transaction (batching is how the coordinator keeps up with fast workers).
  void record_results(const std::vector<Result>& results);
  void record_result(const Result& result) { record_results({result}); }
  // RUNNING -> WAITING (to retry) or PREEMPTED, with an event of `kind` ("retry", "preempted").
  // `refund_attempt`: the attempt did not fail (the job was stopped), so it does not count.
  void requeue(const std::vector<int64_t>& candidate_ids, CandidateState state, const std::string& kind,
               const Json& detail = Json::object(), bool refund_attempt = false);
  // FAILED without a result (e.g. its attempts ran out in jobs that died), with an event.
  void give_up(int64_t candidate_id, const std::string& error);
  // Every stored metric of the sweep's candidates, by candidate id (what resume replays).
  std::map<int64_t, std::vector<Metric>> sweep_metrics(int64_t sweep_id);

  // A fine-tune that cdmoe-train ran on a candidate of a sweep (schema 5), recorded in one
  // transaction as a DONE candidate of its own (`spec`: stage "train") with `result`'s metrics
  // and loss curve, and its provenance in train_runs: `identity` (canonical JSON, hashed) and
  // the run's directory. Returns the candidate id and whether it was recorded now; a run whose
  // identity the sweep holds already is not recorded twice (its earlier candidate is returned).
  std::pair<int64_t, bool> record_train_run(int64_t sweep_id, const CandidateSpec& spec, const Json& identity,
                                            const std::string& out_dir, Result result);
  // The candidate of the sweep's cdmoe-train run with this identity, if recorded.
  std::optional<int64_t> find_train_run(int64_t sweep_id, const Json& identity);

  // The sweep's router statistics with a `router_stats` event, unless it has them already (the
  // first worker's measurement is kept; every worker measures the same model on the same
  // text). Returns whether they were stored.
  bool record_routing(int64_t sweep_id, const std::vector<ExpertRouting>& routing, int rank);

  void log_event(std::optional<int64_t> sweep_id, std::optional<int64_t> candidate_id, const std::string& kind,
                 int rank, const Json& detail);

  Connection& connection() { return connection_; }

 private:
  struct Statements;
  void register_metric_names(const std::vector<Result>& results, std::vector<std::string>& added_names);
  const ParetoAxes& axes_of(int64_t sweep_id);
  void record_pareto_point(int64_t sweep_id, const Result& result);

  Connection connection_;
  std::unique_ptr<Statements> statements_;
  std::map<std::string, std::string> metric_units_;  // every registered metric name -> unit
  std::map<int64_t, ParetoAxes> axes_by_sweep_;
};

}  // namespace cdmoe::db
