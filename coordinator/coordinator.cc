#include "coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/objectives.h"
#include "core/progress.h"

namespace cdmoe::coordinator {
namespace {

const char* const kFullStage = "full_eval";
using db::kFinetuneStage;

// A runnable candidate on its way to a worker.
struct Work {
  int64_t id = 0;
  std::string stage;
  Plan plan;
  Task task;
  bool search = true;   // a search candidate: its result goes back to the strategy
  std::optional<int64_t> parent;  // the candidate it derives from (a fine-tune's budget point)
  int attempts = 0;     // dispatches so far (committed)
  int avoid_rank = -1;  // the worker its last attempt failed on: retry elsewhere when possible
};

struct Known {
  int64_t id = 0;
  CandidateState state = CandidateState::kWaiting;
  int attempts = 0;
};

struct WorkerSlot {
  std::string host;
  int load = 0;  // tasks sent and not yet answered
};

class SweepLoop {
 public:
  SweepLoop(comm::Transport& transport, db::Store& store, int64_t sweep_id, search::Strategy& strategy,
            const CoordinatorOptions& options, const std::atomic<int>& stop)
      : transport_(transport), store_(store), sweep_id_(sweep_id), strategy_(strategy), options_(options),
        stop_(stop), progress_("sweep", 0, options.progress) {}

  SweepSummary run() {
    auto start = std::chrono::steady_clock::now();
    load_known_candidates();
    if (options_.full_evaluation) {
      admit({{kFullStage, "original", Plan(), std::nullopt, ""}}, {Task{0, options_.full_task, Plan(), Json::object(), 1}}, false);
    }
    pump_strategy();
    // One commit per turn: the results that arrived, the candidates they make runnable and the
    // dispatch marks of the tasks about to leave (committed before any of them is sent).
    std::vector<comm::Message> messages;
    while (!finished()) {
      std::vector<std::pair<int, Work>> sends;
      {
        db::Transaction turn(store_.connection());
        if (options_.on_turn) options_.on_turn();
        handle(messages);
        if (int signal = stop_.load()) {
          preempt(signal);
          turn.commit();
          break;
        }
        pump_strategy();
        sends = assign_work();
        turn.commit();
      }
      send(sends);
      show_progress();
      if (finished()) break;
      messages = collect();
    }
    if (!summary_.preempted) {
      for (int rank = 1; rank < transport_.size(); ++rank) transport_.send(rank, comm::Tag::kStop, "");
      store_.set_sweep_state(sweep_id_, "DONE");
    }
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  static std::string key_of(const std::string& stage, const Plan& plan) { return stage + "\n" + plan.hash(); }

  bool finished() const {
    return strategy_.finished() && (budget_admitted_ || !options_.full_evaluation) && queue_.empty() &&
           in_flight_.empty();
  }

  // What the database already holds: a resumed sweep's candidates and their results. A
  // candidate left RUNNING was in flight when the job died; its attempt counts.
  void load_known_candidates() {
    std::vector<int64_t> interrupted;
    for (const db::CandidateRow& row : store_.candidates(sweep_id_)) {
      if (row.stage == db::kManualFinetuneStage) continue;  // cdmoe-train's, never the sweep's own
      known_[row.stage + "\n" + row.plan_hash] = Known{row.id, row.state, row.attempts};
      if (row.state == CandidateState::kRunning) interrupted.push_back(row.id);
    }
    if (!interrupted.empty()) store_.requeue(interrupted, CandidateState::kPreempted, "interrupted");
    for (auto& [key, known] : known_) {
      if (known.state == CandidateState::kRunning) known.state = CandidateState::kPreempted;
    }
    stored_metrics_ = store_.sweep_metrics(sweep_id_);
    for (const auto& [key, known] : known_) {  // a resumed sweep's full evaluations, for their fine-tunes
      if (known.state == CandidateState::kDone && key.rfind(std::string(kFullStage) + "\n", 0) == 0) {
        remember_speed(known.id, stored_metrics_[known.id]);
      }
    }
  }

  // Adds candidates (new ones to the database in one transaction) and routes each by its
  // stored state: DONE and FAILED ones are replayed to the strategy, the rest are queued.
  void admit(const std::vector<db::CandidateSpec>& specs, const std::vector<Task>& tasks, bool search) {
    std::vector<db::CandidateSpec> fresh;
    std::vector<std::string> fresh_keys;
    std::vector<size_t> order;
    for (size_t i = 0; i < specs.size(); ++i) {
      std::string key = key_of(specs[i].stage, specs[i].plan);
      if (!admitted_.insert(key).second) continue;  // e.g. two budgets that chose one plan
      order.push_back(i);
      if (!known_.count(key)) {
        fresh.push_back(specs[i]);
        fresh_keys.push_back(key);
      }
    }
    if (!fresh.empty()) {
      std::vector<int64_t> ids = store_.add_candidates(sweep_id_, fresh);
      for (size_t i = 0; i < ids.size(); ++i) known_[fresh_keys[i]] = Known{ids[i], CandidateState::kWaiting, 0};
    }
    for (size_t i : order) {
      const db::CandidateSpec& spec = specs[i];
      Known& known = known_.at(key_of(spec.stage, spec.plan));
      ++total_;
      if (known.state == CandidateState::kDone) {
        ++summary_.done;
        ++summary_.replayed;
        if (search) strategy_.record(spec.stage, spec.plan, stored_metrics_[known.id]);
      } else if (known.state == CandidateState::kFailed) {
        ++summary_.failed;
        if (search) strategy_.record_failure(spec.stage, spec.plan);
      } else if (known.attempts >= options_.max_attempts) {
        // Every attempt so far ended with the job dying: stop, rather than crash it forever.
        store_.give_up(known.id, "the job died during each of its " + std::to_string(known.attempts) + " attempts");
        known.state = CandidateState::kFailed;
        ++summary_.failed;
        if (search) strategy_.record_failure(spec.stage, spec.plan);
      } else {
        Task task = tasks[i];
        task.candidate_id = known.id;
        task.plan = spec.plan;
        queue_.push_back(Work{known.id, spec.stage, spec.plan, std::move(task), search, spec.parent_id, known.attempts, -1});
      }
    }
  }

  void pump_strategy() {
    for (;;) {
      std::vector<search::Candidate> candidates = strategy_.next();
      if (candidates.empty()) break;
      std::vector<db::CandidateSpec> specs;
      std::vector<Task> tasks;
      for (const search::Candidate& c : candidates) {
        std::optional<int64_t> parent;
        if (c.parent) {
          auto found = known_.find(key_of(c.parent->stage, c.parent->plan));
          if (found != known_.end()) parent = found->second.id;
        }
        specs.push_back({c.stage, c.method, c.plan, parent, c.budget});
        Json params{{"divergence", c.objective.divergence}, {"scope", c.objective.scope},
                    {"calib_fraction", c.objective.calib_fraction}, {"metric", c.objective.metric_name()}};
        // A model-scope candidate extending another (layer selection) runs from where they differ.
        if (c.parent && c.objective.scope == "model") params["incumbent"] = c.parent->plan.to_json();
        tasks.push_back(Task{0, options_.search_task, c.plan, params, 1});
      }
      admit(specs, tasks, true);
    }
    if (strategy_.finished() && options_.full_evaluation && !budget_admitted_) {
      budget_admitted_ = true;
      std::vector<db::CandidateSpec> specs;
      std::vector<Task> tasks;
      for (const search::BudgetPoint& point : strategy_.budget_points()) {
        specs.push_back({kFullStage, point.method, point.plan, std::nullopt, point.budget});
        tasks.push_back(Task{0, options_.full_task, point.plan, Json{{"budget", point.budget}}, 1});
      }
      admit(specs, tasks, false);
      if (options_.finetune) admit_finetunes();
    }
    if (!finished() && queue_.empty() && in_flight_.empty() && !strategy_.finished()) {
      throw_runtime("the search strategy stopped offering candidates before it finished");
    }
  }

  // The fine-tunes of the budget points (admitted after them: their parents have ids) and the
  // control. Deterministic in the budget points, so a resumed sweep admits the same ones.
  void admit_finetunes() {
    std::vector<db::CandidateSpec> specs;
    std::vector<Task> tasks;
    std::set<int> condensed_layers;
    auto parent_of = [&](const Plan& plan) -> std::optional<int64_t> {
      auto found = known_.find(key_of(kFullStage, plan));
      if (found == known_.end()) return std::nullopt;
      return found->second.id;
    };
    for (const search::BudgetPoint& point : strategy_.budget_points()) {
      bool condenses = false;
      for (const auto& [layer, lp] : point.plan.layers()) {
        if (lp.op == LayerOp::kCondense) condenses = true, condensed_layers.insert(layer);
      }
      if (!condenses) continue;  // nothing to train (drop, prune and the original)
      FinetuneTask task = *options_.finetune;
      task.train = "condensed";
      specs.push_back({kFinetuneStage, point.method + "_ft", point.plan, parent_of(point.plan), point.budget});
      tasks.push_back(Task{0, "finetune", point.plan, task.to_params(), 1});
    }
    if (options_.finetune_control && !condensed_layers.empty()) {
      FinetuneTask task = *options_.finetune;
      task.train = "blocks";
      task.layers.assign(condensed_layers.begin(), condensed_layers.end());
      specs.push_back({kFinetuneStage, "original_ft", Plan(), parent_of(Plan()), ""});
      tasks.push_back(Task{0, "finetune", Plan(), task.to_params(), 1});
    }
    admit(specs, tasks, false);
  }

  // Fills every ready worker's free slots, least loaded first, and marks them dispatched (in
  // the turn's transaction); send() sends them once that has committed.
  std::vector<std::pair<int, Work>> assign_work() {
    std::vector<db::Store::Dispatch> marks;
    std::vector<std::pair<int, Work>> sends;
    std::set<int> no_work;  // workers for which nothing in the queue may run (retries avoiding them)
    for (;;) {
      int best = -1;
      for (auto& [rank, slot] : workers_) {
        if (slot.load < options_.in_flight_per_worker && !no_work.count(rank) &&
            (best < 0 || slot.load < workers_[best].load)) {
          best = rank;
        }
      }
      if (best < 0 || queue_.empty()) break;
      auto pick = queue_.begin();
      if (workers_.size() > 1) {
        while (pick != queue_.end() && pick->avoid_rank == best) ++pick;
      }
      if (pick == queue_.end()) {
        no_work.insert(best);
        continue;
      }
      Work work = std::move(*pick);
      queue_.erase(pick);
      marks.push_back({work.id, best, workers_[best].host});
      ++workers_[best].load;
      sends.emplace_back(best, std::move(work));
    }
    if (!marks.empty()) store_.mark_dispatched(marks);
    return sends;
  }

  void send(std::vector<std::pair<int, Work>>& sends) {
    for (auto& [rank, work] : sends) {
      ++work.attempts;
      work.task.attempt = work.attempts;
      // A fine-tune whose parent's speed is known records that: the worker need not time it again.
      if (shared_speed(work)) work.task.params[kMeasureSpeedParam] = false;
      transport_.send(rank, comm::Tag::kTask, task_to_json(work.task).dump());
      ++summary_.dispatched;
      in_flight_.emplace(work.id, std::make_pair(rank, std::move(work)));
    }
  }

  // Waits up to poll_s for a message, then takes whatever else has arrived (at most 1024).
  std::vector<comm::Message> collect() {
    std::vector<comm::Message> messages;
    if (auto first = transport_.receive(options_.poll_s)) messages.push_back(std::move(*first));
    while (!messages.empty() && messages.size() < 1024) {
      auto more = transport_.receive(0);
      if (!more) break;
      messages.push_back(std::move(*more));
    }
    return messages;
  }

  // Hellos register workers; results are recorded, retried or fed to the strategy.
  void handle(std::vector<comm::Message>& messages) {
    std::vector<Result> final_results;
    std::vector<std::pair<Result, Work>> retries;
    std::vector<std::pair<Result, Work>> finished_work;
    for (comm::Message& message : messages) {
      std::string where = "message from rank " + std::to_string(message.source);
      if (message.tag == comm::Tag::kHello) {
        Hello hello = hello_from_json(parse_json_text(message.payload, where), where);
        if (!hello.ok) {
          throw_runtime("worker rank " + std::to_string(message.source) + " on " + hello.host +
                        " failed to start: " + hello.error);
        }
        workers_[message.source] = WorkerSlot{hello.host, 0};
        int worker_rank = hello.rank >= 0 ? hello.rank : message.source;  // the in-process worker is rank 0
        store_.log_event(sweep_id_, std::nullopt, "worker_ready", worker_rank,
                         Json{{"host", hello.host}, {"device", hello.device}, {"dtype", hello.dtype},
                              {"threads", hello.threads}});
        if (!routing_stored_) routing_stored_ = store_.record_routing(sweep_id_, hello.routing, worker_rank);
        continue;
      }
      if (message.tag != comm::Tag::kResult) throw_runtime(where + " has an unexpected tag");
      Result result = result_from_json(parse_json_text(message.payload, where), where);
      auto flight = in_flight_.find(result.candidate_id);
      if (flight == in_flight_.end()) {  // not ours to act on; the store logs it as stale
        final_results.push_back(std::move(result));
        continue;
      }
      int rank = flight->second.first;
      --workers_[rank].load;
      Work work = std::move(flight->second.second);
      in_flight_.erase(flight);
      if (!result.ok && work.attempts < options_.max_attempts) {
        work.avoid_rank = rank;
        retries.emplace_back(std::move(result), std::move(work));
      } else {
        final_results.push_back(result);
        finished_work.emplace_back(std::move(result), std::move(work));
      }
    }
    share_parent_speed(finished_work, final_results);
    if (!final_results.empty()) store_.record_results(final_results);
    for (auto& [result, work] : retries) {
      store_.requeue({work.id}, CandidateState::kWaiting, "retry",
                     Json{{"error", result.error}, {"failed_rank", result.worker_rank}, {"attempt", work.attempts}});
      queue_.push_front(std::move(work));
    }
    for (auto& [result, work] : finished_work) {
      if (result.ok && work.task.kind == "finetune" && options_.finetune) {
        // Recorded DONE with its trained tensors as an artifact: the optimizer state that could
        // resume it is a working file no longer needed (a third of a checkpoint is the weights).
        std::error_code ignored;
        std::filesystem::remove(options_.finetune->checkpoint_path(work.id), ignored);
      }
      if (result.ok) {
        ++summary_.done;
        if (work.search) strategy_.record(work.stage, work.plan, result.metrics);
      } else {
        ++summary_.failed;
        if (work.search) strategy_.record_failure(work.stage, work.plan);
      }
    }
  }

  // Full evaluations' speed metrics, by candidate: what their fine-tuned children share.
  void remember_speed(int64_t id, const std::vector<Metric>& metrics) {
    std::vector<Metric>& kept = speed_of_[id];
    kept.clear();
    for (const Metric& m : metrics) {
      const auto& names = speed_metric_names();
      if (std::find(names.begin(), names.end(), m.name) != names.end()) kept.push_back(m);
    }
  }

  // A fine-tune of a budget point has its parent's architecture (the same plan), so its speed is its parent's:
  // the parent's one measurement replaces the fine-tune's second, noisy one for the same shape
  // (and speed_shared_from names the candidate it came from). Full evaluations arriving now are
  // remembered for their children first.
  void share_parent_speed(std::vector<std::pair<Result, Work>>& finished, std::vector<Result>& results) {
    for (auto& [result, work] : finished) {
      if (result.ok && work.stage == kFullStage) remember_speed(work.id, result.metrics);
    }
    for (Result& result : results) {
      auto flight = std::find_if(finished.begin(), finished.end(), [&](const auto& f) { return f.second.id == result.candidate_id; });
      if (!result.ok || flight == finished.end()) continue;
      const std::vector<Metric>* parent_speed = shared_speed(flight->second);
      if (!parent_speed) continue;
      const auto& names = speed_metric_names();
      result.metrics.erase(std::remove_if(result.metrics.begin(), result.metrics.end(),
                                          [&](const Metric& m) { return std::find(names.begin(), names.end(), m.name) != names.end(); }),
                           result.metrics.end());
      result.metrics.insert(result.metrics.end(), parent_speed->begin(), parent_speed->end());
      result.metrics.push_back({"speed_shared_from", double(*flight->second.parent), ""});
    }
  }

  // The speed metrics `work` shares with its parent: a budget point's fine-tune whose parent's
  // full evaluation measured them. Not the control's: it changed the original model itself, and
  // has no speed-up against it.
  const std::vector<Metric>* shared_speed(const Work& work) const {
    if (work.stage != kFinetuneStage || !work.parent) return nullptr;
    if (work.task.params.value("train", std::string()) == "blocks") return nullptr;
    auto parent = speed_of_.find(*work.parent);
    return parent == speed_of_.end() || parent->second.empty() ? nullptr : &parent->second;
  }

  void preempt(int signal) {
    std::vector<int64_t> ids;
    for (const auto& [id, flight] : in_flight_) ids.push_back(id);
    store_.requeue(ids, CandidateState::kPreempted, "preempted", Json{{"signal", signal}}, /*refund_attempt=*/true);
    store_.set_sweep_state(sweep_id_, "PREEMPTED");
    summary_.preempted = true;
  }

  void show_progress() {
    if (!options_.progress) return;
    int64_t expected = 0;
    std::ostringstream detail;
    for (const search::StageProgress& stage : strategy_.progress()) {
      expected += stage.total;
      if (stage.done >= stage.total) continue;
      detail << stage.stage << " " << stage.done << "/" << stage.total;
      if (std::isfinite(stage.best)) detail << " best " << stage.best;
      detail << "; ";
    }
    // The search's estimate plus what is known beyond it (full evaluations).
    int64_t total = std::max<int64_t>(total_, expected);
    progress_.update(summary_.done + summary_.failed, total, detail.str());
  }

  comm::Transport& transport_;
  db::Store& store_;
  int64_t sweep_id_;
  search::Strategy& strategy_;
  const CoordinatorOptions& options_;
  const std::atomic<int>& stop_;
  Progress progress_;

  std::unordered_map<std::string, Known> known_;  // stage + plan hash -> candidate
  std::unordered_map<int64_t, std::vector<Metric>> speed_of_;  // full evaluation -> its speed metrics
  std::map<int64_t, std::vector<Metric>> stored_metrics_;
  std::set<std::string> admitted_;
  std::deque<Work> queue_;
  std::unordered_map<int64_t, std::pair<int, Work>> in_flight_;  // candidate id -> (rank, work)
  std::map<int, WorkerSlot> workers_;                            // workers that said hello
  bool routing_stored_ = false;                                  // the sweep's router_stats rows exist
  bool budget_admitted_ = false;
  int64_t total_ = 0;
  SweepSummary summary_;
};

}  // namespace

SweepSummary run_sweep(comm::Transport& transport, db::Store& store, int64_t sweep_id, search::Strategy& strategy,
                       const CoordinatorOptions& options, const std::atomic<int>& stop) {
  if (options.max_attempts < 1) throw_bad_input("--max-attempts must be at least 1");
  if (options.in_flight_per_worker < 1) throw_bad_input("--in-flight must be at least 1");
  return SweepLoop(transport, store, sweep_id, strategy, options, stop).run();
}

}  // namespace cdmoe::coordinator
