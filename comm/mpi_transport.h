// MPI behind comm::Transport: MPI_COMM_WORLD, nonblocking sends (a large task never waits for a
// busy worker to post its receive), and receives by MPI_Iprobe with a capped back-off sleep
// (20 µs doubling to 1 ms) rather than MPI_Recv, whose progress loop spins a core.
// MpiSession initialises MPI (MPI_THREAD_FUNNELED) and finalises it on destruction; create one
// per process, before anything else touches MPI. The only file outside comm/*.cc that knows MPI
// exists, and it does not include mpi.h.
#pragma once

#include <memory>

#include "comm/transport.h"

namespace cdmoe::comm {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();  // waits for queued sends, then MPI_Finalize
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  Transport& transport() { return *transport_; }
  int local_rank() const { return local_rank_; }  // rank among the processes on this node
  int local_size() const { return local_size_; }  // processes of the job on this node

  // Ends every rank of the job now with `exit_code` (MPI_Abort): how a preempted coordinator
  // stops workers that are in the middle of a computation.
  [[noreturn]] void abort_job(int exit_code);

 private:
  std::unique_ptr<Transport> transport_;
  int local_rank_ = 0;
  int local_size_ = 1;
};

}  // namespace cdmoe::comm
