#include "db/sweep_snapshot.h"

#include <algorithm>
#include <cmath>

#include "db/report_queries.h"

namespace cdmoe::db {

const SnapshotCandidate* SweepSnapshot::find(int64_t id) const {
  auto it = std::lower_bound(candidates.begin(), candidates.end(), id,
                             [](const SnapshotCandidate& c, int64_t value) { return c.id < value; });
  return it != candidates.end() && it->id == id ? &*it : nullptr;
}

SweepSnapshot read_sweep_snapshot(Connection& connection, const std::string& sweep) {
  // One read transaction: a sweep that is writing meanwhile is seen at one commit, whole.
  connection.exec("BEGIN");
  struct EndRead {
    Connection& c;
    ~EndRead() { c.exec("COMMIT"); }
  } end_read{connection};
  const int64_t sweep_id = require_sweep_id(connection, sweep);
  SweepSnapshot s;
  Statement row(connection, R"sql(
    SELECT name, state, strategy, config_json, git_commit, host, model_path, model_hash, data_hashes,
           started_at, coalesce(finished_at, ''), seed, pareto_accuracy, pareto_memory, pareto_speed
    FROM sweeps WHERE id = ?)sql");
  row.bind(1, sweep_id);
  row.step();
  s.name = row.column_text(0), s.state = row.column_text(1), s.strategy = row.column_text(2);
  s.config_json = row.column_text(3), s.git_commit = row.column_text(4), s.host = row.column_text(5);
  s.model_path = row.column_text(6), s.model_hash = row.column_text(7), s.data_hashes = row.column_text(8);
  s.started_at = row.column_text(9), s.finished_at = row.column_text(10), s.seed = row.column_int(11);
  s.accuracy_axis = row.column_text(12), s.memory_axis = row.column_text(13), s.speed_axis = row.column_text(14);

  Statement candidates(connection, R"sql(
    SELECT id, stage, method, coalesce(budget, ''), plan_json, parent_id, state
    FROM candidates WHERE sweep_id = ? ORDER BY id)sql");
  candidates.bind(1, sweep_id);
  while (candidates.step()) {
    SnapshotCandidate c;
    c.id = candidates.column_int(0), c.stage = candidates.column_text(1), c.method = candidates.column_text(2);
    c.budget = candidates.column_text(3), c.plan_json = candidates.column_text(4);
    if (!candidates.column_is_null(5)) c.parent_id = candidates.column_int(5);
    c.state = parse_candidate_state(candidates.column_text(6), "candidates.state");
    s.candidates.push_back(std::move(c));
  }
  Statement metrics(connection, R"sql(
    SELECT m.candidate_id, m.name, m.value, n.unit FROM candidates c
    JOIN metrics m ON m.candidate_id = c.id JOIN metric_names n ON n.name = m.name
    WHERE c.sweep_id = ? AND m.value IS NOT NULL ORDER BY m.candidate_id)sql");
  metrics.bind(1, sweep_id);
  // Both are in id order: walk them together.
  size_t next = 0;
  while (metrics.step()) {
    int64_t id = metrics.column_int(0);
    while (next < s.candidates.size() && s.candidates[next].id < id) ++next;
    double value = metrics.column_double(2);
    if (next == s.candidates.size() || s.candidates[next].id != id || !std::isfinite(value)) continue;
    std::string name = metrics.column_text(1);
    s.candidates[next].metrics[name] = value;
    s.units.emplace(name, metrics.column_text(3));
  }
  Statement pareto(connection, "SELECT candidate_id FROM pareto WHERE sweep = ? ORDER BY candidate_id");
  pareto.bind(1, sweep);
  while (pareto.step()) s.pareto_ids.push_back(pareto.column_int(0));
  Statement routing(connection, R"sql(
    SELECT layer, expert, tokens, average_weight FROM router_stats WHERE sweep_id = ? ORDER BY layer, expert)sql");
  routing.bind(1, sweep_id);
  while (routing.step()) {
    s.routing.push_back({int(routing.column_int(0)), int(routing.column_int(1)), routing.column_double(2),
                         routing.column_double(3)});
  }
  Statement steps(connection, R"sql(
    SELECT f.candidate_id, f.step, f.loss, f.lr, f.tokens FROM finetune_steps f
    JOIN candidates c ON c.id = f.candidate_id WHERE c.sweep_id = ? ORDER BY f.candidate_id, f.step)sql");
  steps.bind(1, sweep_id);
  while (steps.step()) {
    s.finetune[steps.column_int(0)].push_back({steps.column_int(1), steps.column_is_null(2) ? NAN : steps.column_double(2),
                                               steps.column_is_null(3) ? NAN : steps.column_double(3),
                                               steps.column_is_null(4) ? 0 : steps.column_int(4)});
  }
  Statement held_out(connection, R"sql(
    SELECT h.candidate_id, h.after_steps, h.loss, h.tokens, h.data_hash FROM finetune_held_out h
    JOIN candidates c ON c.id = h.candidate_id WHERE c.sweep_id = ?
    ORDER BY h.candidate_id, h.data_hash, h.after_steps)sql");
  held_out.bind(1, sweep_id);
  while (held_out.step()) {
    s.held_out[held_out.column_int(0)].push_back({held_out.column_int(1), held_out.column_is_null(2) ? NAN : held_out.column_double(2),
                                                  held_out.column_is_null(3) ? 0 : held_out.column_int(3), held_out.column_text(4)});
  }
  return s;
}

}  // namespace cdmoe::db
