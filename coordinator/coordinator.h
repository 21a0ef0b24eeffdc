// Coordinator: the sweep loop on rank 0 (ARCHITECTURE.md §1): strategy -> queue -> transport ->
// workers -> results -> store (sole writer) -> strategy. Dispatch is dynamic: a worker with a
// free slot gets the next runnable candidate at once, up to `in_flight_per_worker` each, so a
// worker never idles while the next task travels. Each loop turn is one transaction: the
// results that arrived, the candidates they make runnable and the dispatch marks of the tasks
// about to leave, committed before they are sent (one per task would cap a sweep at ~3k
// tasks/s). A failed turn rolls back whole and ends the sweep.
// Resume is replay: candidates the database already has are not run again; their stored
// results are fed to the strategy as if they had just arrived, which (strategies being
// deterministic) leads it to the same next candidates as the interrupted run.
// Single-threaded; owns nothing (the caller owns transport, store and strategy).
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>

#include "comm/transport.h"
#include "core/finetune_task.h"
#include "db/store.h"
#include "search/strategy.h"

namespace cdmoe::coordinator {

struct CoordinatorOptions {
  int max_attempts = 3;            // dispatches of a candidate before it is FAILED
  int in_flight_per_worker = 2;    // tasks queued at a worker at once (hides the round trip)
  bool progress = false;           // progress line on stderr
  std::string search_task = "search";   // Task.kind of search candidates ("noop" in the dispatch bench)
  std::string full_task = "full_eval";  // Task.kind of budget points and the original model
  bool full_evaluation = true;     // after the search, evaluate the original and every budget point in full
  double poll_s = 0.1;             // longest wait for a message before checking for a stop signal
  std::function<void()> on_turn;   // called inside every loop turn's transaction (the lease's heartbeat)
  // Fine-tuning after the search (needs full_evaluation): every budget point that condenses a
  // layer is fine-tuned and evaluated as a "finetune" candidate (method + "_ft", parent = the
  // point), and with finetune_control the original model's MoE blocks of every layer those
  // points condense ("original_ft", parent = the original). The template's train/layers are set
  // per candidate.
  std::optional<FinetuneTask> finetune;
  bool finetune_control = true;
};

struct SweepSummary {
  bool preempted = false;  // stopped by a signal: in-flight candidates are PREEMPTED
  int64_t done = 0;        // candidates DONE (this run and replayed)
  int64_t failed = 0;      // candidates FAILED for good
  int64_t dispatched = 0;  // tasks sent in this run
  int64_t replayed = 0;    // results taken from the database instead of recomputed
  double seconds = 0;
};

// Runs (or resumes) sweep `sweep_id` to the end, or until `stop` becomes non-zero (a signal
// number): then it stops dispatching, marks what is in flight PREEMPTED, commits and returns.
// Workers are told to stop when the sweep ends, not when it is preempted (they may be busy:
// the caller ends the job). A worker that fails to start is a runtime error.
SweepSummary run_sweep(comm::Transport& transport, db::Store& store, int64_t sweep_id, search::Strategy& strategy,
                       const CoordinatorOptions& options, const std::atomic<int>& stop);

}  // namespace cdmoe::coordinator
