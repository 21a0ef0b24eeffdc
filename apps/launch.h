// What the MPI-capable mains share about how they were started: whether mpirun or
// srun --mpi=pmix launched them, the cores they may use, and stop signals turned into a flag.
#pragma once

#include <atomic>

namespace cdmoe {

// Launched by mpirun or srun --mpi=pmix (otherwise MPI is not initialised at all).
bool launched_by_mpi();

// The cores this process may run on (its affinity mask).
int usable_cores();

// SIGTERM, SIGINT and SIGUSR2 (Slurm's preemption signals) store their number in `flag`.
void install_stop_flag(std::atomic<int>& flag);

}  // namespace cdmoe
