#include "apps/launch.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "core/error.h"

namespace cdmoe {
namespace {

std::atomic<int>* g_flag = nullptr;
void on_stop_signal(int signal) { g_flag->store(signal); }

}  // namespace

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  const char* choice = std::getenv("CDMOE_MALLOC");
  if (choice && std::string(choice) == "system") return;  // glibc's defaults (for comparison)
  mallopt(M_MMAP_MAX, 0);               // no allocation gets its own mapping
  mallopt(M_TRIM_THRESHOLD, INT_MAX);   // the heap's top is never returned (both are needed:
                                        // the trim setting alone made it 4x slower)
#endif
}

bool launched_by_mpi() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(variable)) return true;
  }
  return false;
}

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

void warn_if_threads_share_cores(const std::string& program, int threads) {
  const int cores = usable_cores();
  if (threads <= cores) return;
  std::cerr << program << ": warning: " << threads << " compute threads on the " << cores << " core"
            << (cores == 1 ? "" : "s") << " this process is bound to (its launcher's binding): they share "
            << (cores == 1 ? "it" : "them") << "; start it with mpirun --bind-to none (or srun --cpus-per-task="
            << threads << ")\n";
}

int checked_threads(int threads, const std::string& option) {
  const int hardware = int(std::max(1u, std::thread::hardware_concurrency()));
  if (threads < 0 || threads > 4 * hardware) {
    throw_bad_input(option + " " + std::to_string(threads) + " is not 0 (the default) or at most 4 per hardware thread of this machine (" +
                    std::to_string(4 * hardware) + ")");
  }
  return threads;
}

void install_stop_flag(std::atomic<int>& flag) {
  g_flag = &flag;
  for (int signal : {SIGTERM, SIGINT, SIGUSR2}) {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(signal, &action, nullptr);
  }
}

}  // namespace cdmoe
