// Which device a process computes on: the --device option of cdmoe-sweep and cdmoe-eval.
//   "cpu"   the CPU;
//   "cuda"  cuda:(local_rank % gpus); bad input (exit 2) when this process sees no CUDA device;
//   "auto"  as "cuda" when this process sees a CUDA device, else the CPU.
// local_rank is the process's rank among the job's processes on its node (0 outside MPI);
// gpus the CUDA devices it sees. Under Slurm's --gpus-per-task=1 a task sees only its own
// GPU, so the modulo gives 0; under mpirun on a node of G GPUs the ranks take them in turn.
// Stateless and thread-safe.
#pragma once

#include <string>

namespace cdmoe::model {

// The decision alone: "cpu" or "cuda:N" (N = local_rank % gpus). Names the option in errors.
std::string choose_device(const std::string& requested, int local_rank, int gpus);

// The CUDA devices this process sees (0 with a CPU-only libtorch, as Debian's).
int visible_cuda_devices();

// choose_device with this process's devices; a "cuda" request that cannot be met says whether
// libtorch was built without CUDA or no device is visible.
std::string device_for_this_process(const std::string& requested, int local_rank);

// The compute dtype (the --dtype option): "float32" or "bfloat16" as asked; "auto" is bfloat16
// on a CUDA device and float32 on the CPU (where bfloat16 kernels are slow). Names the option.
std::string compute_dtype_for(const std::string& requested, const std::string& device);

// Subnormal floats flushed to zero on the CPU (torch's set_flush_denormal: FTZ/DAZ), unless the
// environment sets CDMOE_DENORMALS=keep. Gradients of a trained model reach the subnormal range,
// where x86 arithmetic is many times slower: the demo model's backward took 2.1 s per step
// instead of 0.89 s (BENCHMARKS.md "The demo"). Values below 1.2e-38 become 0, far under every
// tolerance. Call first thing in a compute main; per thread, so before any worker thread starts.
void flush_denormals_unless_kept();

}  // namespace cdmoe::model
