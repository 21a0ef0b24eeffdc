// Dispatch overhead of a sweep: no-op tasks through the whole coordinator -> transport ->
// worker -> transport -> store path (every task is a candidate row, a dispatch mark, a result
// commit and events, as in a real sweep). Run under MPI for 1 or 2 workers:
//   mpirun -np 2 dispatch_bench [--tasks N] [--in-flight K]    (1 worker)
//   mpirun -np 3 dispatch_bench ...                            (2 workers)
// Rank 0 prints one JSON line: tasks/s, µs per task, and the coordinator's CPU share.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "comm/mpi_transport.h"
#include "core/cpu_time.h"
#include "coordinator/coordinator.h"
#include "coordinator/sweep_setup.h"
#include "worker/worker_loop.h"

using namespace cdmoe;

namespace {

// Offers `count` distinct plans at once, each measured by nothing.
class NoopStrategy : public search::Strategy {
 public:
  explicit NoopStrategy(int64_t count) : count_(count) {}
  std::vector<search::Candidate> next() override {
    std::vector<search::Candidate> out;
    if (offered_) return out;
    offered_ = true;
    for (int64_t i = 0; i < count_; ++i) {
      Json plan{{"layers", {{std::to_string(1 + i % 27), {{"op", "prune"}, {"experts", {i / 27 % 1000, 1000 + i / 27000}}}}}}};
      out.push_back(search::Candidate{"noop", "noop", Plan::from_json(plan, "bench plan"), {}, std::nullopt, ""});
    }
    return out;
  }
  void record(const std::string&, const Plan&, const std::vector<Metric>&) override { ++done_; }
  void record_failure(const std::string&, const Plan&) override { ++done_; }
  bool finished() const override { return offered_ && done_ == count_; }
  std::vector<search::BudgetPoint> budget_points() const override { return {}; }
  std::vector<search::StageProgress> progress() const override { return {{"noop", done_, count_, 0}}; }

 private:
  int64_t count_, done_ = 0;
  bool offered_ = false;
};


}  // namespace

int main(int argc, char** argv) {
  comm::MpiSession mpi(&argc, &argv);
  comm::Transport& transport = mpi.transport();
  int64_t tasks = 20000;
  int in_flight = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--tasks") tasks = std::atoll(argv[i + 1]);
    if (flag == "--in-flight") in_flight = std::atoi(argv[i + 1]);
  }
  if (transport.rank() != 0) {
    worker::serve(transport, [](Hello&) {}, [&](const Task& task) {
      Result result;
      result.candidate_id = task.candidate_id;
      result.worker_rank = transport.rank();
      return result;
    });
    return 0;
  }
  std::string dir = std::filesystem::temp_directory_path() / ("cdmoe-dispatch-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  double result_tps = 0, cpu_share = 0, seconds = 0;
  {
    db::Store store(dir + "/bench.db");
    db::SweepSpec spec;
    spec.name = "dispatch";
    spec.strategy = "noop";
    int64_t sweep_id = coordinator::start_or_resume_sweep(store, spec).sweep_id;
    NoopStrategy strategy(tasks);
    coordinator::CoordinatorOptions options;
    options.search_task = "noop";
    options.full_evaluation = false;
    options.in_flight_per_worker = in_flight;
    std::atomic<int> stop{0};
    double cpu_start = process_cpu_seconds();
    coordinator::SweepSummary summary = coordinator::run_sweep(transport, store, sweep_id, strategy, options, stop);
    seconds = summary.seconds;
    result_tps = double(summary.done) / summary.seconds;
    cpu_share = (process_cpu_seconds() - cpu_start) / summary.seconds;
  }
  std::filesystem::remove_all(dir);
  nlohmann::json line{{"bench", "dispatch"},       {"workers", transport.size() - 1}, {"tasks", tasks},
                      {"in_flight", in_flight},    {"seconds", seconds},             {"tasks_per_s", result_tps},
                      {"us_per_task", 1e6 / result_tps}, {"coordinator_cpu_share", cpu_share}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}
