#include "db/schema.h"

namespace cdmoe::db {
namespace {

// Version 1. Times are ISO-8601 UTC text; sizes in bytes; durations in seconds.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sweeps (
  id              INTEGER PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  state           TEXT NOT NULL DEFAULT 'RUNNING'
                  CHECK (state IN ('RUNNING', 'DONE', 'FAILED', 'PREEMPTED')),
  strategy        TEXT NOT NULL,
  config_json     TEXT NOT NULL,          -- the whole sweep configuration, canonical JSON
  config_hash     TEXT NOT NULL,          -- sha256 of config_json
  seed            INTEGER NOT NULL,
  git_commit      TEXT NOT NULL,          -- of the cdmoe binary that started the sweep
  host            TEXT NOT NULL,
  model_path      TEXT NOT NULL,
  model_hash      TEXT NOT NULL,          -- sha256 over the model's files
  data_hashes     TEXT NOT NULL DEFAULT '{}',  -- JSON object: data file -> sha256
  pareto_accuracy TEXT NOT NULL DEFAULT 'task_acc_mean',  -- metric maximised by `pareto`
  pareto_memory   TEXT NOT NULL DEFAULT 'param_bytes',    -- metric minimised by `pareto`
  pareto_speed    TEXT NOT NULL DEFAULT 'speedup',        -- metric maximised by `pareto`
  started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  finished_at     TEXT
);

CREATE TABLE candidates (
  id          INTEGER PRIMARY KEY,
  sweep_id    INTEGER NOT NULL REFERENCES sweeps(id),
  stage       TEXT NOT NULL,     -- e.g. expert_select, layer_select, final
  method      TEXT NOT NULL,     -- e.g. cdmoe_sr, cdmoe_s, drop, prune, original
  plan_json   TEXT NOT NULL,     -- canonical plan (ARCHITECTURE.md §7)
  plan_hash   TEXT NOT NULL,     -- sha256 of plan_json
  parent_id   INTEGER REFERENCES candidates(id),
  budget      TEXT,              -- the budget point this candidate stands for, if any
  state       TEXT NOT NULL DEFAULT 'WAITING'
              CHECK (state IN ('WAITING', 'RUNNING', 'DONE', 'FAILED', 'PREEMPTED')),
  attempts    INTEGER NOT NULL DEFAULT 0,  -- dispatches so far, committed before each dispatch
  worker_rank INTEGER,
  worker_host TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  started_at  TEXT,
  finished_at TEXT,
  elapsed_s   REAL,
  error       TEXT,
  UNIQUE (sweep_id, stage, plan_hash)
);
CREATE INDEX candidates_by_state ON candidates(sweep_id, state);

-- Every metric name ever recorded with its unit (one unit per name); the `results` view has
-- one column per row here.
CREATE TABLE metric_names (
  name TEXT PRIMARY KEY,
  unit TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE metrics (
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  name         TEXT NOT NULL,     -- a metric_names.name
  value        REAL,             -- NULL when not finite; the unit is metric_names.unit
  PRIMARY KEY (candidate_id, name)
) WITHOUT ROWID;

CREATE TABLE finetune_steps (
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  step         INTEGER NOT NULL,
  loss         REAL,
  lr           REAL,
  tokens       INTEGER,
  PRIMARY KEY (candidate_id, step)
) WITHOUT ROWID;

-- Append-only log: sweep_start, dispatch, done, failed, retry, preempted, sweep_end, ...
CREATE TABLE events (
  id           INTEGER PRIMARY KEY,
  sweep_id     INTEGER REFERENCES sweeps(id),
  candidate_id INTEGER,
  at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  kind         TEXT NOT NULL,
  rank         INTEGER,
  detail       TEXT NOT NULL DEFAULT '{}'   -- JSON object
);
CREATE INDEX events_by_sweep ON events(sweep_id, id);

-- DONE candidates carrying finite values of all three of their sweep's Pareto-axis metrics,
-- written by the store in the transaction that records the result. A copy of three metrics
-- rows per full evaluation: it spares `metrics` an index by name (which halved write
-- throughput, BENCHMARKS.md) while keeping the front a query over a few hundred rows.
CREATE TABLE pareto_points (
  candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id),
  sweep_id     INTEGER NOT NULL REFERENCES sweeps(id),
  accuracy     REAL NOT NULL,
  memory       REAL NOT NULL,
  speed        REAL NOT NULL
);
CREATE INDEX pareto_points_by_sweep ON pareto_points(sweep_id, accuracy);

-- The non-dominated points: no other point of the sweep is at least as good on all three
-- axes (accuracy up, memory down, speed up) and better on one.
CREATE VIEW pareto AS
SELECT w.name AS sweep, p.candidate_id, c.stage, c.method, c.budget, c.plan_hash,
       p.accuracy, p.memory, p.speed
FROM pareto_points p JOIN sweeps w ON w.id = p.sweep_id JOIN candidates c ON c.id = p.candidate_id
WHERE NOT EXISTS (
  SELECT 1 FROM pareto_points q
  WHERE q.sweep_id = p.sweep_id
    AND q.accuracy >= p.accuracy AND q.memory <= p.memory AND q.speed >= p.speed
    AND (q.accuracy > p.accuracy OR q.memory < p.memory OR q.speed > p.speed));
)sql";

// Version 2: the router statistics of the sweep's original model (what condense ops without
// explicit weights use), as a worker measured them on the calibration text.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE router_stats (
  sweep_id       INTEGER NOT NULL REFERENCES sweeps(id),
  layer          INTEGER NOT NULL,
  expert         INTEGER NOT NULL,  -- a routed expert, or -1 for the shared expert's gate (qwen2_moe)
  tokens         REAL NOT NULL,     -- calibration tokens routed to it (top-k; -1: every token), padding excluded
  average_weight REAL NOT NULL,     -- mean gate weight over those tokens (-1: mean sigmoid of the shared gate)
  PRIMARY KEY (sweep_id, layer, expert)
) WITHOUT ROWID;
)sql";

// Version 3: who runs a sweep. One row per sweep being run: the coordinator's host and pid and
// its last heartbeat (Unix seconds). Taken in a write transaction before anything of the sweep
// is touched, renewed while it runs, removed when it ends; a second coordinator on the same
// sweep is refused while the owner lives (db/sweep_lease.h).
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE sweep_leases (
  sweep        TEXT PRIMARY KEY,  -- sweeps.name (the lease is taken before a new sweep's row exists)
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  heartbeat    REAL NOT NULL,     -- Unix time, seconds
  acquired_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;
)sql";

// Version 4: the speed axis' 95% confidence interval (the metrics <speed>_ci_low and
// <speed>_ci_high; NULL where the evaluation measured none, which counts as a point), and a
// front on which two speeds inside both intervals are a tie: neither is better on speed, so a
// point that is only faster by noise no longer stays on the front (ARCHITECTURE.md §5).
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE pareto_points ADD COLUMN speed_low REAL;
ALTER TABLE pareto_points ADD COLUMN speed_high REAL;
DROP VIEW IF EXISTS pareto;
CREATE VIEW pareto AS
SELECT w.name AS sweep, p.candidate_id, c.stage, c.method, c.budget, c.plan_hash,
       p.accuracy, p.memory, p.speed, p.speed_low, p.speed_high
FROM pareto_points p JOIN sweeps w ON w.id = p.sweep_id JOIN candidates c ON c.id = p.candidate_id
WHERE NOT EXISTS (
  SELECT 1 FROM (
    SELECT q.accuracy, q.memory, q.speed,
           (q.speed BETWEEN coalesce(p.speed_low, p.speed) AND coalesce(p.speed_high, p.speed)
            AND p.speed BETWEEN coalesce(q.speed_low, q.speed) AND coalesce(q.speed_high, q.speed)) AS speed_tie
    FROM pareto_points q WHERE q.sweep_id = p.sweep_id)
  WHERE accuracy >= p.accuracy AND memory <= p.memory AND (speed >= p.speed OR speed_tie)
    AND (accuracy > p.accuracy OR memory < p.memory OR (speed > p.speed AND NOT speed_tie)));
)sql";

// Version 5: fine-tunes that cdmoe-train runs on a sweep's candidate are candidates of their own
// (stage 'train'), never the sweep's: the sweep admits its own fine-tunes by (stage, plan), so
// the unique key on (sweep, stage, plan) leaves 'train' out (one plan may be fine-tuned by hand
// on other data or steps), and train_runs holds each such run's provenance, keyed by its
// identity so the same run is recorded once. SQLite cannot drop a table constraint: the table
// is rebuilt, the rows of metrics, steps and children that point at it checked at commit.
constexpr const char* kSchemaV5 = R"sql(
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE candidates_v4 AS SELECT * FROM candidates;
DROP TABLE candidates;
CREATE TABLE candidates (
  id          INTEGER PRIMARY KEY,
  sweep_id    INTEGER NOT NULL REFERENCES sweeps(id),
  stage       TEXT NOT NULL,     -- e.g. expert_select, layer_select, full_eval, finetune, train
  method      TEXT NOT NULL,     -- e.g. cdmoe_sr, cdmoe_s, drop, prune, original
  plan_json   TEXT NOT NULL,     -- canonical plan (ARCHITECTURE.md §7)
  plan_hash   TEXT NOT NULL,     -- sha256 of plan_json
  parent_id   INTEGER REFERENCES candidates(id),
  budget      TEXT,              -- the budget point this candidate stands for, if any
  state       TEXT NOT NULL DEFAULT 'WAITING'
              CHECK (state IN ('WAITING', 'RUNNING', 'DONE', 'FAILED', 'PREEMPTED')),
  attempts    INTEGER NOT NULL DEFAULT 0,  -- dispatches so far, committed before each dispatch
  worker_rank INTEGER,
  worker_host TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  started_at  TEXT,
  finished_at TEXT,
  elapsed_s   REAL,
  error       TEXT
);
INSERT INTO candidates SELECT * FROM temp.candidates_v4;
DROP TABLE temp.candidates_v4;
CREATE UNIQUE INDEX candidates_by_plan ON candidates(sweep_id, stage, plan_hash) WHERE stage <> 'train';
CREATE INDEX candidates_by_state ON candidates(sweep_id, state);

CREATE TABLE train_runs (
  candidate_id  INTEGER PRIMARY KEY REFERENCES candidates(id),  -- the run's own candidate (stage 'train')
  sweep_id      INTEGER NOT NULL REFERENCES sweeps(id),
  identity_json TEXT NOT NULL,  -- canonical JSON of what determined the run: model and tokenizer
                                -- fingerprints, plan hash, data hashes, steps, learning rate and
                                -- schedule, batch, sequence length, seed, dtype
  identity_hash TEXT NOT NULL,  -- sha256 of identity_json
  out_dir       TEXT NOT NULL,  -- the run's directory (absolute): its log and fine-tuned model
  UNIQUE (sweep_id, identity_hash)
);
)sql";

// Version 6: held-out losses measured while fine-tuning (cdmoe-train --eval-data), after a
// number of steps, on the held-out text of data_hash (a run resumed with other held-out text
// keeps both, told apart by it).
constexpr const char* kSchemaV6 = R"sql(
CREATE TABLE finetune_held_out (
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  after_steps  INTEGER NOT NULL,  -- optimizer steps done when it was measured
  data_hash    TEXT NOT NULL,     -- content hash of the held-out text
  loss         REAL,              -- mean nats per held-out target token; NULL when not finite
  tokens       INTEGER,           -- held-out target tokens
  PRIMARY KEY (candidate_id, after_steps, data_hash)
) WITHOUT ROWID;
)sql";

// Version 7: what a candidate leaves behind besides numbers. A fine-tune's trained tensors (the
// condensed layers' dense MLPs, or the control's MoE blocks) are kept as a file beside the
// database, recorded in the transaction that records the candidate's result, so the candidate
// can be exported as it was evaluated; a file whose sha256 differs is refused, never used.
constexpr const char* kSchemaV7 = R"sql(
CREATE TABLE artifacts (
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  kind         TEXT NOT NULL,     -- 'trained_tensors'
  path         TEXT NOT NULL,     -- relative to the database's directory
  sha256       TEXT NOT NULL,     -- of the whole file
  bytes        INTEGER NOT NULL,
  PRIMARY KEY (candidate_id, kind)
) WITHOUT ROWID;
)sql";

}  // namespace

const std::vector<std::string>& migrations() {
  static const std::vector<std::string> steps = {
      std::string(kSchemaV1) + results_view_sql({}),
      kSchemaV2,
      kSchemaV3,
      kSchemaV4,
      kSchemaV5,
      kSchemaV6,
      kSchemaV7,
  };
  return steps;
}

std::string results_view_sql(const std::vector<std::string>& metric_names) {
  std::string sql =
      "DROP VIEW IF EXISTS results;\n"
      "CREATE VIEW results AS SELECT w.name AS sweep, c.id AS candidate_id, c.stage, c.method, c.budget,\n"
      "  c.state, c.attempts, c.plan_hash, c.plan_json, c.parent_id, c.worker_rank, c.worker_host,\n"
      "  c.started_at, c.finished_at, c.elapsed_s, c.error";
  for (const std::string& name : metric_names) {
    // Names are validated as [a-z][a-z0-9_]*, so quoting cannot be escaped.
    sql += ",\n  (SELECT value FROM metrics m WHERE m.candidate_id = c.id AND m.name = '" + name + "') AS \"" +
           name + "\"";
  }
  sql += "\nFROM candidates c JOIN sweeps w ON w.id = c.sweep_id;\n";
  return sql;
}

}  // namespace cdmoe::db
