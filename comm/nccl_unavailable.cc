// The NCCL entry points of a build without NCCL (CMake did not find nccl.h, libnccl and the
// CUDA runtime): data-parallel training then runs over MPI on host memory only.
#include "comm/collective.h"
#include "core/error.h"

namespace cdmoe::comm {

bool nccl_available() { return false; }

std::unique_ptr<Collective> make_nccl_collective(int) {
  throw_runtime("this build has no NCCL backend (CMake found no nccl.h/libnccl with a CUDA runtime); "
                "use the MPI backend or rebuild with NCCL");
}

}  // namespace cdmoe::comm
