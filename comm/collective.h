// Collective: allreduce and broadcast across every rank of the job, for data-parallel
// fine-tuning (ARCHITECTURE.md §3). Buffers are raw memory: host memory for the MPI and
// single-rank backends, CUDA device memory for NCCL (only in builds that found NCCL). Every rank
// must make the same calls in the same order with the same counts; a call returns when this
// rank's buffer holds the result. One thread per process calls a Collective. Torch-free.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace cdmoe::comm {

enum class ElementType { kFloat32, kFloat64, kInt64 };
enum class ReduceOp { kSum, kAverage, kMax };

size_t element_size(ElementType type);

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "single", "mpi", "nccl"
  // True when buffers must be CUDA device memory (NCCL); host memory otherwise.
  virtual bool device_buffers() const { return false; }
  // In place: every rank's `count` elements become the reduction over all ranks.
  virtual void allreduce(void* buffer, size_t count, ElementType type, ReduceOp op) = 0;
  // In place: every rank's `count` elements become `root`'s.
  virtual void broadcast(void* buffer, size_t count, ElementType type, int root) = 0;

  // Conveniences on one host scalar (a device backend stages it through device memory).
  double allreduce_scalar(double value, ReduceOp op);
  int64_t allreduce_scalar(int64_t value, ReduceOp op);
};

// One rank: every call leaves the buffer as it is (an average over one rank is the value).
std::unique_ptr<Collective> make_single_collective();
// MPI_COMM_WORLD on host buffers; MPI must be initialised (comm::MpiSession) and outlive it.
std::unique_ptr<Collective> make_mpi_collective();
// True when this build has the NCCL backend (CMake found nccl.h and libnccl with CUDA).
bool nccl_available();
// NCCL over CUDA device `device` of this rank, its unique id broadcast over MPI from rank 0
// (MPI must be initialised). A build without NCCL throws a runtime error naming the reason.
std::unique_ptr<Collective> make_nccl_collective(int device);

}  // namespace cdmoe::comm
