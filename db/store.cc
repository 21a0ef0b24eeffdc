#include "db/store.h"

#include <unistd.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/build_info.h"
#include "core/error.h"
#include "core/host_name.h"
#include "core/names.h"
#include "core/sha256.h"
#include "db/database.h"
#include "db/schema.h"

namespace cdmoe::db {
namespace {

// Columns the `results` view has of its own; a metric may not shadow one.
const std::set<std::string> kResultsViewColumns = {
    "sweep", "candidate_id", "stage", "method", "budget", "state", "attempts", "plan_hash", "plan_json",
    "parent_id", "worker_rank", "worker_host", "started_at", "finished_at", "elapsed_s", "error"};

CandidateRow read_candidate(const Statement& s) {
  CandidateRow row;
  row.id = s.column_int(0);
  row.sweep_id = s.column_int(1);
  row.stage = s.column_text(2);
  row.method = s.column_text(3);
  row.plan_json = s.column_text(4);
  row.plan_hash = s.column_text(5);
  if (!s.column_is_null(6)) row.parent_id = s.column_int(6);
  row.budget = s.column_text(7);
  row.state = parse_candidate_state(s.column_text(8), "candidates.state");
  row.attempts = int(s.column_int(9));
  row.error = s.column_text(10);
  return row;
}

constexpr const char* kCandidateColumns =
    "id, sweep_id, stage, method, plan_json, plan_hash, parent_id, budget, state, attempts, error";

}  // namespace

struct Store::Statements {
  explicit Statements(Connection& c)
      : insert_candidate(c,
                         "INSERT INTO candidates (sweep_id, stage, method, plan_json, plan_hash, parent_id, budget) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sweep_id, stage, plan_hash) WHERE stage <> 'train' DO NOTHING"),
        find_candidate(c, "SELECT id FROM candidates WHERE sweep_id = ? AND stage = ? AND plan_hash = ?"),
        dispatch(c,
                 "UPDATE candidates SET state = 'RUNNING', attempts = attempts + 1, worker_rank = ?, "
                 "worker_host = ?, started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                 "WHERE id = ? AND state IN ('WAITING', 'PREEMPTED') RETURNING sweep_id, attempts"),
        finish(c,
               "UPDATE candidates SET state = ?, error = ?, elapsed_s = ?, worker_rank = ?, worker_host = ?, "
               "finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ? AND state = 'RUNNING' "
               "RETURNING sweep_id"),
        requeue(c,
                "UPDATE candidates SET state = ?, attempts = max(0, attempts - ?) WHERE id = ? AND state = 'RUNNING' "
                "RETURNING sweep_id"),
        give_up(c,
                "UPDATE candidates SET state = 'FAILED', error = ?, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                "WHERE id = ? AND state IN ('WAITING', 'PREEMPTED', 'RUNNING') RETURNING sweep_id"),
        insert_metric(c, "INSERT INTO metrics (candidate_id, name, value) VALUES (?, ?, ?)"),
        insert_step(c,
                    "INSERT OR REPLACE INTO finetune_steps (candidate_id, step, loss, lr, tokens) "
                    "VALUES (?, ?, ?, ?, ?)"),
        insert_held_out(c,
                        "INSERT OR REPLACE INTO finetune_held_out (candidate_id, after_steps, data_hash, loss, tokens) "
                        "VALUES (?, ?, ?, ?, ?)"),
        insert_artifact(c,
                        "INSERT OR REPLACE INTO artifacts (candidate_id, kind, path, sha256, bytes) VALUES (?, ?, ?, ?, ?)"),
        insert_event(c, "INSERT INTO events (sweep_id, candidate_id, kind, rank, detail) VALUES (?, ?, ?, ?, ?)"),
        insert_pareto_point(c,
                            "INSERT INTO pareto_points (candidate_id, sweep_id, accuracy, memory, speed, speed_low, "
                            "speed_high) VALUES (?, ?, ?, ?, ?, ?, ?)"),
        sweep_axes(c, "SELECT pareto_accuracy, pareto_memory, pareto_speed FROM sweeps WHERE id = ?") {}

  Statement insert_candidate, find_candidate, dispatch, finish, requeue, give_up, insert_metric, insert_step, insert_held_out,
      insert_artifact, insert_event,
      insert_pareto_point, sweep_axes;
};

Store::Store(const std::string& path)
    : connection_(open_database(path, OpenMode::kReadWrite)),
      statements_(std::make_unique<Statements>(connection_)) {
  Statement names(connection_, "SELECT name, unit FROM metric_names");
  while (names.step()) metric_units_.emplace(names.column_text(0), names.column_text(1));
}

Store::~Store() = default;

std::optional<SweepRow> Store::find_sweep(const std::string& name) {
  Statement s(connection_,
              "SELECT id, name, state, strategy, config_json, config_hash, git_commit, host, model_path, "
              "model_hash, started_at, coalesce(finished_at, ''), seed FROM sweeps WHERE name = ?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  SweepRow row;
  row.id = s.column_int(0);
  row.name = s.column_text(1);
  row.state = s.column_text(2);
  row.strategy = s.column_text(3);
  row.config_json = s.column_text(4);
  row.config_hash = s.column_text(5);
  row.git_commit = s.column_text(6);
  row.host = s.column_text(7);
  row.model_path = s.column_text(8);
  row.model_hash = s.column_text(9);
  row.started_at = s.column_text(10);
  row.finished_at = s.column_text(11);
  row.seed = s.column_int(12);
  return row;
}

int64_t Store::create_sweep(const SweepSpec& spec) {
  check_printable_name(spec.name, "sweep name");
  for (const std::string* axis : {&spec.axes.accuracy, &spec.axes.memory, &spec.axes.speed}) {
    if (!is_valid_metric_name(*axis)) throw_bad_input("Pareto axis \"" + *axis + "\" is not a valid metric name");
  }
  std::string config_json = spec.config.dump();
  Transaction transaction(connection_);
  Statement insert(connection_,
                   "INSERT INTO sweeps (name, strategy, config_json, config_hash, seed, git_commit, host, "
                   "model_path, model_hash, data_hashes, pareto_accuracy, pareto_memory, pareto_speed) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind_all(spec.name, spec.strategy, config_json, sha256_hex(config_json), spec.seed, git_commit(),
                  host_name(), spec.model_path, spec.model_hash, spec.data_hashes.dump(), spec.axes.accuracy,
                  spec.axes.memory, spec.axes.speed);
  insert.run();
  int64_t id = connection_.last_insert_rowid();
  log_event(id, std::nullopt, "sweep_start", 0, Json{{"git_commit", git_commit()}, {"host", host_name()}});
  transaction.commit();
  return id;
}

void Store::set_sweep_state(int64_t sweep_id, const std::string& state) {
  bool final_state = state != "RUNNING";
  Transaction transaction(connection_);
  Statement update(connection_, final_state ? "UPDATE sweeps SET state = ?, finished_at = "
                                              "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?"
                                            : "UPDATE sweeps SET state = ?, finished_at = NULL WHERE id = ?");
  update.bind_all(state, sweep_id).run();
  if (connection_.changes() != 1) throw_runtime("no sweep with id " + std::to_string(sweep_id));
  log_event(sweep_id, std::nullopt, final_state ? "sweep_end" : "sweep_resume", 0, Json{{"state", state}});
  transaction.commit();
}

bool Store::record_routing(int64_t sweep_id, const std::vector<ExpertRouting>& routing, int rank) {
  if (routing.empty()) return false;
  Transaction transaction(connection_);
  Statement existing(connection_, "SELECT count(*) FROM router_stats WHERE sweep_id = ?");
  existing.bind(1, sweep_id);
  existing.step();
  if (existing.column_int(0) > 0) return false;
  Statement insert(connection_,
                   "INSERT INTO router_stats (sweep_id, layer, expert, tokens, average_weight) VALUES (?, ?, ?, ?, ?)");
  for (const ExpertRouting& r : routing) {
    insert.bind_all(sweep_id, int64_t(r.layer), int64_t(r.expert), r.tokens, r.average_weight).run();
  }
  log_event(sweep_id, std::nullopt, "router_stats", rank, Json{{"rows", routing.size()}});
  transaction.commit();
  return true;
}

std::vector<int64_t> Store::add_candidates(int64_t sweep_id, const std::vector<CandidateSpec>& specs) {
  std::vector<int64_t> ids;
  ids.reserve(specs.size());
  Transaction transaction(connection_);
  for (const CandidateSpec& spec : specs) {
    // Names go into SQL results, one-line messages and the HTML report: printable UTF-8 only.
    check_printable_name(spec.stage, "candidate stage");
    check_printable_name(spec.method, "candidate method");
    check_printable_name(spec.budget, "candidate budget");
    std::string plan_hash = spec.plan.hash();
    Statement& insert = statements_->insert_candidate;
    insert.bind_all(sweep_id, spec.stage, spec.method, spec.plan.canonical(), plan_hash);
    if (spec.parent_id) insert.bind(6, *spec.parent_id); else insert.bind_null(6);
    if (spec.budget.empty()) insert.bind_null(7); else insert.bind(7, spec.budget);
    insert.run();
    if (connection_.changes() == 1) {
      ids.push_back(connection_.last_insert_rowid());
      continue;
    }
    Statement& find = statements_->find_candidate;
    find.bind_all(sweep_id, spec.stage, plan_hash);
    if (!find.step()) throw_runtime("candidate insert for sweep " + std::to_string(sweep_id) + " vanished");
    ids.push_back(find.column_int(0));
    find.reset();
  }
  transaction.commit();
  return ids;
}

std::optional<int64_t> Store::find_train_run(int64_t sweep_id, const Json& identity) {
  Statement find(connection_, "SELECT candidate_id FROM train_runs WHERE sweep_id = ? AND identity_hash = ?");
  find.bind_all(sweep_id, sha256_hex(identity.dump()));
  if (!find.step()) return std::nullopt;
  return find.column_int(0);
}

std::pair<int64_t, bool> Store::record_train_run(int64_t sweep_id, const CandidateSpec& spec, const Json& identity,
                                                 const std::string& out_dir, Result result) {
  if (spec.stage != kManualFinetuneStage) throw_runtime(std::string("record_train_run: a manual fine-tune's stage is ") + kManualFinetuneStage);
  Transaction transaction(connection_);
  if (std::optional<int64_t> earlier = find_train_run(sweep_id, identity)) return {*earlier, false};
  const int64_t id = add_candidates(sweep_id, {spec}).front();  // never an existing row: 'train' is not unique by plan
  mark_dispatched(id, result.worker_rank, result.worker_host);
  result.candidate_id = id;
  record_result(result);
  const std::string identity_json = identity.dump();
  Statement insert(connection_,
                   "INSERT INTO train_runs (candidate_id, sweep_id, identity_json, identity_hash, out_dir) VALUES (?, ?, ?, ?, ?)");
  insert.bind_all(id, sweep_id, identity_json, sha256_hex(identity_json), out_dir).run();
  transaction.commit();
  return {id, true};
}

std::vector<CandidateRow> Store::candidates(int64_t sweep_id, std::optional<CandidateState> state) {
  std::string sql = std::string("SELECT ") + kCandidateColumns + " FROM candidates WHERE sweep_id = ?" +
                    (state ? " AND state = ?" : "") + " ORDER BY id";
  Statement s(connection_, sql);
  s.bind(1, sweep_id);
  if (state) s.bind(2, candidate_state_name(*state));
  std::vector<CandidateRow> rows;
  while (s.step()) rows.push_back(read_candidate(s));
  return rows;
}

void Store::mark_dispatched(const std::vector<Dispatch>& dispatches) {
  Transaction transaction(connection_);
  for (const Dispatch& d : dispatches) {
    Statement& dispatch = statements_->dispatch;
    dispatch.bind_all(d.worker_rank, d.worker_host, d.candidate_id);
    if (!dispatch.step()) {
      throw_runtime("candidate " + std::to_string(d.candidate_id) +
                    " cannot be dispatched: unknown, or not WAITING/PREEMPTED");
    }
    int64_t sweep_id = dispatch.column_int(0);
    int64_t attempt = dispatch.column_int(1);
    dispatch.reset();
    log_event(sweep_id, d.candidate_id, "dispatch", d.worker_rank, Json{{"attempt", attempt}, {"host", d.worker_host}});
  }
  transaction.commit();
}

void Store::register_metric_names(const std::vector<Result>& results, std::vector<std::string>& added_names) {
  bool added = false;
  for (const Result& result : results) {
    std::set<std::string_view> in_result;
    for (const Metric& metric : result.metrics) {
      if (!in_result.insert(metric.name).second) {
        throw_bad_input("result for candidate " + std::to_string(result.candidate_id) + " has metric \"" +
                        metric.name + "\" twice");
      }
      auto known = metric_units_.find(metric.name);
      if (known != metric_units_.end()) {
        if (known->second != metric.unit) {
          throw_bad_input("metric \"" + metric.name + "\" comes with unit \"" + metric.unit + "\" but was recorded in \"" +
                          known->second + "\" before");
        }
        continue;
      }
      if (!is_valid_metric_name(metric.name) || kResultsViewColumns.count(metric.name)) {
        throw_bad_input("metric name \"" + metric.name + "\" is not a valid lower_snake_case metric name "
                        "or clashes with a column of the results view");
      }
      Statement insert(connection_, "INSERT OR IGNORE INTO metric_names (name, unit) VALUES (?, ?)");
      insert.bind_all(metric.name, metric.unit).run();
      metric_units_.emplace(metric.name, metric.unit);
      added_names.push_back(metric.name);
      added = true;
    }
  }
  if (added) {
    std::vector<std::string> names;
    for (const auto& entry : metric_units_) names.push_back(entry.first);
    connection_.exec(results_view_sql(names));
  }
}

void Store::record_results(const std::vector<Result>& results) {
  Transaction transaction(connection_);
  std::vector<std::string> added_names;  // forgotten again if the transaction rolls back
  try {
    register_metric_names(results, added_names);
    for (const Result& result : results) {
      Statement& finish = statements_->finish;
      finish.bind_all(result.ok ? "DONE" : "FAILED", result.error, result.elapsed_s, result.worker_rank,
                      result.worker_host, result.candidate_id);
      if (!finish.step()) {
        // Not RUNNING: a duplicate or stale result (e.g. after a retry went elsewhere). Keep the
        // first; never count a candidate DONE twice.
        finish.reset();
        log_event(std::nullopt, result.candidate_id, "stale_result", result.worker_rank,
                  Json{{"ok", result.ok}});
        continue;
      }
      int64_t sweep_id = finish.column_int(0);
      finish.reset();
      for (const Metric& metric : result.metrics) {
        statements_->insert_metric.bind_all(result.candidate_id, metric.name, metric.value).run();
      }
      if (result.ok) record_pareto_point(sweep_id, result);
      for (const FinetuneStep& step : result.finetune_steps) {
        statements_->insert_step.bind_all(result.candidate_id, step.step, step.loss, step.learning_rate, step.tokens)
            .run();
      }
      for (const HeldOutLoss& h : result.held_out_losses) {
        statements_->insert_held_out.bind_all(result.candidate_id, h.after_steps, h.data_hash, h.loss, h.tokens).run();
      }
      if (result.ok) {
        for (const Artifact& a : result.artifacts) {
          statements_->insert_artifact.bind_all(result.candidate_id, a.kind, a.path, a.sha256, a.bytes).run();
        }
      }
      Json detail{{"elapsed_s", result.elapsed_s}};
      if (!result.ok) detail["error"] = result.error;
      log_event(sweep_id, result.candidate_id, result.ok ? "done" : "failed", result.worker_rank, detail);
    }
    transaction.commit();
  } catch (...) {
    for (const std::string& name : added_names) metric_units_.erase(name);  // the rollback took them
    throw;
  }
}

const ParetoAxes& Store::axes_of(int64_t sweep_id) {
  auto it = axes_by_sweep_.find(sweep_id);
  if (it != axes_by_sweep_.end()) return it->second;
  Statement& query = statements_->sweep_axes;
  query.bind(1, sweep_id);
  if (!query.step()) throw_runtime("no sweep with id " + std::to_string(sweep_id));
  ParetoAxes axes{query.column_text(0), query.column_text(1), query.column_text(2)};
  query.reset();
  return axes_by_sweep_.emplace(sweep_id, std::move(axes)).first->second;
}

void Store::record_pareto_point(int64_t sweep_id, const Result& result) {
  const ParetoAxes& axes = axes_of(sweep_id);
  const double* accuracy = nullptr;
  const double* memory = nullptr;
  const double* speed = nullptr;
  double speed_low = NAN, speed_high = NAN;  // NULL unless the evaluation measured the interval
  for (const Metric& metric : result.metrics) {
    if (!std::isfinite(metric.value)) continue;
    if (metric.name == axes.accuracy) accuracy = &metric.value;
    if (metric.name == axes.memory) memory = &metric.value;
    if (metric.name == axes.speed) speed = &metric.value;
    if (metric.name == axes.speed + "_ci_low") speed_low = metric.value;
    if (metric.name == axes.speed + "_ci_high") speed_high = metric.value;
  }
  if (accuracy && memory && speed) {
    statements_->insert_pareto_point
        .bind_all(result.candidate_id, sweep_id, *accuracy, *memory, *speed, speed_low, speed_high)
        .run();
  }
}

void Store::requeue(const std::vector<int64_t>& candidate_ids, CandidateState state, const std::string& kind,
                    const Json& detail, bool refund_attempt) {
  if (state != CandidateState::kWaiting && state != CandidateState::kPreempted) {
    throw_runtime("requeue only to WAITING or PREEMPTED");
  }
  Transaction transaction(connection_);
  for (int64_t id : candidate_ids) {
    Statement& requeue = statements_->requeue;
    requeue.bind_all(candidate_state_name(state), refund_attempt ? 1 : 0, id);
    if (!requeue.step()) {
      requeue.reset();
      continue;
    }
    int64_t sweep_id = requeue.column_int(0);
    requeue.reset();
    log_event(sweep_id, id, kind, 0, detail);
  }
  transaction.commit();
}

void Store::give_up(int64_t candidate_id, const std::string& error) {
  Transaction transaction(connection_);
  Statement& give_up = statements_->give_up;
  give_up.bind_all(error, candidate_id);
  if (give_up.step()) {
    int64_t sweep_id = give_up.column_int(0);
    give_up.reset();
    log_event(sweep_id, candidate_id, "failed", 0, Json{{"error", error}});
  } else {
    give_up.reset();
  }
  transaction.commit();
}

std::map<int64_t, std::vector<Metric>> Store::sweep_metrics(int64_t sweep_id) {
  Statement s(connection_,
              "SELECT m.candidate_id, m.name, m.value, n.unit FROM metrics m JOIN candidates c ON c.id = m.candidate_id "
              "JOIN metric_names n ON n.name = m.name WHERE c.sweep_id = ? ORDER BY m.candidate_id, m.name");
  s.bind(1, sweep_id);
  std::map<int64_t, std::vector<Metric>> metrics;
  while (s.step()) {
    double value = s.column_is_null(2) ? std::nan("") : s.column_double(2);  // stored non-finite
    metrics[s.column_int(0)].push_back(Metric{s.column_text(1), value, s.column_text(3)});
  }
  return metrics;
}

void Store::log_event(std::optional<int64_t> sweep_id, std::optional<int64_t> candidate_id, const std::string& kind,
                      int rank, const Json& detail) {
  Statement& insert = statements_->insert_event;
  if (sweep_id) insert.bind(1, *sweep_id); else insert.bind_null(1);
  if (candidate_id) insert.bind(2, *candidate_id); else insert.bind_null(2);
  insert.bind(3, kind).bind(4, rank).bind(5, detail.dump()).run();
}

}  // namespace cdmoe::db
