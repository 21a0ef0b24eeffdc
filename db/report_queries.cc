#include "db/report_queries.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"

namespace cdmoe::db {
namespace {

Table run_query(Statement& statement) {
  Table table;
  for (int i = 0; i < statement.column_count(); ++i) table.columns.push_back(statement.column_name(i));
  while (statement.step()) {
    std::vector<Value> row;
    for (int i = 0; i < statement.column_count(); ++i) row.push_back(statement.column_value(i));
    table.rows.push_back(std::move(row));
  }
  return table;
}

}  // namespace

int64_t require_sweep_id(Connection& connection, const std::string& sweep) {
  Statement find(connection, "SELECT id FROM sweeps WHERE name = ?");
  find.bind(1, sweep);
  if (find.step()) return find.column_int(0);
  Statement names(connection, "SELECT name FROM sweeps ORDER BY id");
  std::string known;
  while (names.step()) known += (known.empty() ? "" : ", ") + names.column_text(0);
  throw_bad_input("results DB '" + connection.path() + "' has no sweep named '" + sweep + "' (sweeps: " +
                  (known.empty() ? "none" : known) + ")");
}

std::string candidate_plan_json(Connection& connection, int64_t candidate_id) {
  Statement find(connection, "SELECT plan_json FROM candidates WHERE id = ?");
  find.bind(1, candidate_id);
  if (!find.step()) {
    throw_bad_input("results DB '" + connection.path() + "' has no candidate " + std::to_string(candidate_id));
  }
  return find.column_text(0);
}

CandidateRecord candidate_record(Connection& connection, int64_t candidate_id) {
  Statement row(connection, R"sql(
    SELECT c.stage, c.method, coalesce(c.budget, ''), c.state, coalesce(c.finished_at, ''), w.name, w.git_commit,
           w.model_hash, w.config_hash, w.data_hashes, w.started_at
    FROM candidates c JOIN sweeps w ON w.id = c.sweep_id WHERE c.id = ?)sql");
  row.bind(1, candidate_id);
  if (!row.step()) throw_bad_input("results DB '" + connection.path() + "' has no candidate " + std::to_string(candidate_id));
  CandidateRecord r{row.column_text(0), row.column_text(1), row.column_text(2), row.column_text(3), row.column_text(4),
                    row.column_text(5), row.column_text(6), row.column_text(7), row.column_text(8), row.column_text(9),
                    row.column_text(10), {}};
  Statement metrics(connection, R"sql(
    SELECT m.name, m.value, n.unit FROM metrics m JOIN metric_names n ON n.name = m.name
    WHERE m.candidate_id = ? ORDER BY m.name)sql");
  metrics.bind(1, candidate_id);
  while (metrics.step()) {
    r.metrics.push_back({metrics.column_text(0), metrics.column_is_null(1) ? NAN : metrics.column_double(1), metrics.column_text(2)});
  }
  return r;
}

void require_sweep_model(const CandidateOrigin& origin, const std::string& fingerprint, const std::string& model_dir,
                         const std::string& db_path) {
  if (origin.model_hash != fingerprint) {
    throw_bad_input("--model " + model_dir + " is not the model of sweep \"" + origin.sweep + "\" in " + db_path +
                    " (its config.json and weights differ from those the sweep recorded)");
  }
}

std::vector<Artifact> candidate_artifacts(Connection& connection, int64_t candidate_id) {
  Statement find(connection, "SELECT kind, path, sha256, bytes FROM artifacts WHERE candidate_id = ? ORDER BY kind");
  find.bind(1, candidate_id);
  const std::filesystem::path base = std::filesystem::absolute(connection.path()).parent_path();
  std::vector<Artifact> artifacts;
  while (find.step()) {
    artifacts.push_back(Artifact{find.column_text(0), (base / find.column_text(1)).string(), find.column_text(2), find.column_int(3)});
  }
  return artifacts;
}

CandidateOrigin candidate_origin(Connection& connection, int64_t candidate_id) {
  Statement find(connection, R"sql(
    SELECT c.sweep_id, s.name, c.method, c.stage, c.budget, s.model_hash, s.config_json
    FROM candidates c JOIN sweeps s ON s.id = c.sweep_id WHERE c.id = ?)sql");
  find.bind(1, candidate_id);
  if (!find.step()) {
    throw_bad_input("results DB '" + connection.path() + "' has no candidate " + std::to_string(candidate_id));
  }
  return {find.column_int(0), find.column_text(1), find.column_text(2), find.column_text(3),
          find.column_is_null(4) ? "" : find.column_text(4), find.column_text(5), find.column_text(6)};
}

std::vector<ExpertRouting> candidate_sweep_routing(Connection& connection, int64_t candidate_id) {
  Statement rows(connection, R"sql(
    SELECT r.layer, r.expert, r.tokens, r.average_weight FROM router_stats r
    JOIN candidates c ON c.sweep_id = r.sweep_id WHERE c.id = ? ORDER BY r.layer, r.expert)sql");
  rows.bind(1, candidate_id);
  std::vector<ExpertRouting> out;
  while (rows.step()) {
    out.push_back({int(rows.column_int(0)), int(rows.column_int(1)), rows.column_double(2), rows.column_double(3)});
  }
  return out;
}

Table sweeps_table(Connection& connection) {
  Statement s(connection, R"sql(
    SELECT w.name AS sweep, w.state, w.strategy,
           count(c.id) AS candidates,
           coalesce(sum(c.state = 'DONE'), 0) AS done,
           coalesce(sum(c.state = 'FAILED'), 0) AS failed,
           coalesce(sum(c.state IN ('WAITING', 'RUNNING', 'PREEMPTED')), 0) AS pending,
           w.started_at, w.finished_at, substr(w.git_commit, 1, 12) AS git_commit, w.model_path
    FROM sweeps w LEFT JOIN candidates c ON c.sweep_id = w.id
    GROUP BY w.id ORDER BY w.id)sql");
  return run_query(s);
}

Table candidates_table(Connection& connection, const std::string& sweep, std::optional<CandidateState> state) {
  int64_t sweep_id = require_sweep_id(connection, sweep);
  Statement s(connection, std::string(R"sql(
    SELECT id, stage, method, budget, state, attempts, worker_rank, elapsed_s,
           substr(plan_hash, 1, 12) AS plan_hash, plan_json AS plan, error
    FROM candidates WHERE sweep_id = ?)sql") + (state ? " AND state = ?" : "") + " ORDER BY id");
  s.bind(1, sweep_id);
  if (state) s.bind(2, candidate_state_name(*state));
  return run_query(s);
}

Table pareto_table(Connection& connection, const std::string& sweep) {
  int64_t sweep_id = require_sweep_id(connection, sweep);
  Statement axes(connection, "SELECT pareto_accuracy, pareto_memory, pareto_speed FROM sweeps WHERE id = ?");
  axes.bind(1, sweep_id);
  axes.step();
  Statement s(connection, R"sql(
    SELECT candidate_id, stage, method, budget, accuracy, memory, speed, speed_low, speed_high,
           substr(plan_hash, 1, 12) AS plan_hash
    FROM pareto WHERE sweep = ? ORDER BY accuracy DESC, memory ASC, speed DESC, candidate_id)sql");
  s.bind(1, sweep);
  Table table = run_query(s);
  table.columns[4] = axes.column_text(0);
  table.columns[5] = axes.column_text(1);
  table.columns[6] = axes.column_text(2);
  table.columns[7] = axes.column_text(2) + "_ci_low";
  table.columns[8] = axes.column_text(2) + "_ci_high";
  return table;
}

Table router_table(Connection& connection, const std::string& sweep) {
  int64_t sweep_id = require_sweep_id(connection, sweep);
  Statement s(connection, R"sql(
    SELECT r.layer, r.expert, r.tokens,
           CASE WHEN r.expert < 0 THEN NULL
                ELSE r.tokens / (SELECT sum(tokens) FROM router_stats t
                                 WHERE t.sweep_id = r.sweep_id AND t.layer = r.layer AND t.expert >= 0) END AS token_share,
           r.average_weight
    FROM router_stats r WHERE r.sweep_id = ? ORDER BY r.layer, r.expert < 0, r.expert)sql");
  s.bind(1, sweep_id);
  return run_query(s);
}

}  // namespace cdmoe::db
