// What the MPI-capable mains share about how they were started: whether mpirun or
// srun --mpi=pmix launched them, the cores they may use, and stop signals turned into a flag.
#pragma once

#include <atomic>
#include <string>

namespace cdmoe {

// Launched by mpirun or srun --mpi=pmix (otherwise MPI is not initialised at all).
bool launched_by_mpi();

// The cores this process may run on (its affinity mask).
int usable_cores();

// A --threads value: 0 (the default share of the cores) or at most four threads per hardware
// thread of this machine (more only thrashes: 100,000 started hundreds and hung). Bad input
// naming `option` otherwise.
int checked_threads(int threads, const std::string& option);

// A warning on stderr when `threads` compute threads exceed the cores this process may run on:
// mpirun binds each rank to one core by default when it starts two or fewer, so a worker asked
// for 2 threads on a 2-core node runs both on one core at half speed, silently. It names the way
// out (mpirun --bind-to none, or srun --cpus-per-task) and runs on.
void warn_if_threads_share_cores(const std::string& program, int threads);

// glibc's allocator set to serve every allocation from its heap and never hand freed memory
// back to the OS, as a caching allocator does: a forward pass frees and reallocates the same
// large tensors over and over, and by default each one is a fresh mmap whose pages fault in
// again (on this project's VMs that doubled an evaluation's time: BENCHMARKS.md "Evaluation speed").
// The process keeps its peak memory; call it first thing in a compute main. No-op off glibc,
// or when the environment sets CDMOE_MALLOC=system (glibc's defaults, to compare).
void keep_freed_memory_for_reuse();

// SIGTERM, SIGINT and SIGUSR2 (Slurm's preemption signals) store their number in `flag`.
void install_stop_flag(std::atomic<int>& flag);

}  // namespace cdmoe
