// cdmoe-sweep: the product (ARCHITECTURE.md §1). Under `mpirun -np N` or `srun --mpi=pmix`, rank 0
// coordinates and ranks 1..N-1 are workers; run plainly (or with one rank) the coordinator
// drives an in-process worker thread through the same messages.
//   cdmoe-sweep --model DIR --calib FILE --db FILE --sweep NAME [--strategy cdmoe[,drop,...]]
//               [--experts-kept 0,6] [--budgets layers:1-4] [--tasks piqa,FILE.jsonl] ... [--dry-run]
// Exit codes: 0 the sweep is DONE; 2 bad input or usage (nothing written to the database);
// 1 a failure while running; 75 (EX_TEMPFAIL) preempted by SIGTERM, SIGINT or SIGUSR2: the
// in-flight candidates are PREEMPTED and committed, and the same command resumes the sweep.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/launch.h"
#include "model/device.h"
#include "apps/sweep_settings.h"
#include "apps/table_format.h"
#include "comm/mpi_transport.h"
#include "coordinator/coordinator.h"
#include "coordinator/sweep_setup.h"
#include "core/cpu_time.h"
#include "core/error.h"
#include "core/progress.h"
#include "db/report_queries.h"
#include "db/store.h"
#include "db/sweep_lease.h"
#include "worker/worker.h"
#include "worker/worker_loop.h"

using namespace cdmoe;

namespace {

constexpr int kPreemptedExitCode = 75;  // EX_TEMPFAIL: run the same command again to resume

std::atomic<int> g_stop{0};


void on_stop_signal(int signal) { g_stop.store(signal); }

// Slurm signals every task of the job, and mpirun forwards to every rank. The coordinator needs
// well under a second to commit its PREEMPTED rows and end the job; a worker gives it that much
// time and then leaves on its own, busy or idle: when the step is being torn down (requeue,
// preemption) the coordinator's MPI_Abort may not reach it, and a worker that lingers holds the
// job in COMPLETING until Slurm's KillWait runs out.
constexpr unsigned kWorkerGraceSeconds = 5;
// A worker in a fine-tune also sees the flag: it checkpoints at the end of its step and stops.
void on_worker_stop_signal(int signal) {
  g_stop.store(signal);
  alarm(kWorkerGraceSeconds);
}
void on_worker_grace_over(int) { _exit(kPreemptedExitCode); }

void install_handler(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, nullptr);
}

void install_stop_handlers(bool coordinator) {
  for (int signal : {SIGTERM, SIGINT, SIGUSR2}) {
    install_handler(signal, coordinator ? on_stop_signal : on_worker_stop_signal);
  }
  if (!coordinator) install_handler(SIGALRM, on_worker_grace_over);
}

// --threads, or the node's cores shared among its ranks (never oversubscribe, ARCHITECTURE.md §8).
void set_compute_threads(const apps::SweepSettings& settings, int ranks_on_node) {
  int threads = settings.threads > 0 ? settings.threads : std::max(1, usable_cores() / std::max(1, ranks_on_node));
  warn_if_threads_share_cores("cdmoe-sweep", threads);
  at::set_num_threads(threads);
}

void print_pareto(db::Store& store, const std::string& sweep) {
  db::Table table = db::pareto_table(store.connection(), sweep);
  if (table.rows.empty()) return;
  std::cout << "Pareto front of sweep " << sweep << ":\n";
  write_table(table, TableFormat::kAligned, std::cout);
}

// Loads a worker into `slot` and puts the router statistics it measured into its hello.
worker::Starter worker_starter(const apps::SweepSettings& settings, int rank, int local_rank,
                               std::unique_ptr<worker::Worker>& slot) {
  return [&settings, rank, local_rank, &slot](Hello& hello) {
    worker::WorkerOptions options = apps::worker_options(settings, local_rank);
    options.stop = &g_stop;
    slot = std::make_unique<worker::Worker>(options, rank);
    hello.routing = slot->routing();
    hello.device = slot->device();
    hello.dtype = slot->dtype();
    hello.rank = rank;
    hello.threads = at::get_num_threads();
  };
}

// `transport` is asked for only once the inputs are valid (a one-rank sweep starts its
// in-process worker, which loads the model, there).
int run_coordinator(const apps::SweepSettings& settings, const std::function<comm::Transport&()>& transport) {
  apps::ValidatedSweep sweep = apps::validate_sweep(settings);  // bad input leaves here, before the DB
  if (settings.dry_run) {
    apps::print_dry_run(settings, sweep, std::cout);
    return 0;
  }
  if (g_stop.load()) {  // a signal while the inputs were read: stop before anything is written
    std::cerr << "cdmoe-sweep: stopped by signal " << g_stop.load() << " before the sweep started; nothing was written\n";
    return kPreemptedExitCode;
  }
  db::Store store(settings.db_path);
  db::SweepLease lease(store.connection(), settings.sweep_name);  // before anything of the sweep is touched
  coordinator::SweepStart start = coordinator::start_or_resume_sweep(store, sweep.spec);
  if (start.resumed) {
    std::cerr << "cdmoe-sweep: resuming sweep \"" << settings.sweep_name << "\" (was " << start.previous_state
              << ")\n";
  }
  coordinator::CoordinatorOptions options;
  options.max_attempts = settings.max_attempts;
  options.in_flight_per_worker = settings.in_flight;
  options.progress = settings.progress || Progress::stderr_is_tty();
  options.full_evaluation = settings.full_evaluation;
  options.finetune = apps::finetune_task(settings, sweep.spec.data_hashes);
  options.finetune_control = settings.finetune_control;
  options.on_turn = [&lease] { lease.heartbeat(); };
  coordinator::SweepSummary summary;
  double cpu_before = process_cpu_seconds();
  try {
    summary = coordinator::run_sweep(transport(), store, start.sweep_id, *sweep.strategy, options, g_stop);
  } catch (...) {
    if (!lease.lost()) store.set_sweep_state(start.sweep_id, "FAILED");
    throw;
  }
  if (summary.preempted) {
    std::cerr << "cdmoe-sweep: preempted by signal " << g_stop.load() << "; in-flight candidates are PREEMPTED. "
              << "Run the same command to resume (exit " << kPreemptedExitCode << ")\n";
    return kPreemptedExitCode;
  }
  std::cerr << "cdmoe-sweep: sweep \"" << settings.sweep_name << "\" done: " << summary.done << " candidates DONE ("
            << summary.replayed << " from the database), " << summary.failed << " FAILED, " << summary.dispatched
            << " tasks in " << summary.seconds << " s; rank 0 used " << process_cpu_seconds() - cpu_before << " CPU-s\n";
  print_pareto(store, settings.sweep_name);
  return 0;
}

int sweep_main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  model::flush_denormals_unless_kept();
  install_stop_handlers(/*coordinator=*/true);
  std::unique_ptr<comm::MpiSession> mpi;
  if (launched_by_mpi()) mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
  int rank = mpi ? mpi->transport().rank() : 0;
  int size = mpi ? mpi->transport().size() : 1;
  if (rank != 0) install_stop_handlers(/*coordinator=*/false);

  std::optional<apps::SweepSettings> parsed;
  int code = run_cli("cdmoe-sweep", [&] {
    parsed = apps::parse_sweep_settings(argc, argv, /*print_help=*/rank == 0);
    return 0;
  });
  if (rank != 0 && (code != 0 || !parsed)) return code;  // rank 0 reports it
  if (code != 0 || !parsed) {
    for (int r = 1; r < size; ++r) mpi->transport().send(r, comm::Tag::kStop, "");
    return code;
  }
  const apps::SweepSettings& settings = *parsed;
  set_compute_threads(settings, mpi ? mpi->local_size() : 1);

  if (rank != 0) {  // a worker: load once, serve until told to stop
    std::unique_ptr<worker::Worker> worker;
    worker::serve(mpi->transport(), worker_starter(settings, rank, mpi->local_rank(), worker),
                  [&](const Task& task) { return worker->run(task); });
    return 0;
  }

  std::unique_ptr<worker::Worker> local_worker;
  std::unique_ptr<comm::Transport> in_process;
  auto transport = [&]() -> comm::Transport& {
    if (mpi && size > 1) return mpi->transport();
    if (!in_process) {
      in_process = comm::make_in_process_transport(
          [&] {
            return worker::hello_message(worker_starter(settings, 0, mpi ? mpi->local_rank() : 0, local_worker));
          },
          worker::as_handler([&](const Task& task) { return local_worker->run(task); }));
    }
    return *in_process;
  };
  code = run_cli("cdmoe-sweep", [&] { return run_coordinator(settings, transport); });
  std::cout.flush();
  std::cerr.flush();
  if (code == kPreemptedExitCode || (code != 0 && code != 2)) {
    // Workers may be in the middle of a task: end the job now rather than wait for them.
    if (mpi && size > 1) mpi->abort_job(code);
    std::_Exit(code);
  }
  if (code == 2) {
    for (int r = 1; r < size; ++r) mpi->transport().send(r, comm::Tag::kStop, "");
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) { return sweep_main(argc, argv); }
