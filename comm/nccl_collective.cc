// Collective over NCCL on CUDA device buffers; compiled instead of nccl_unavailable.cc only in a
// build configured with -DCDMOE_NCCL=ON (comm/CMakeLists.txt: NCCL and the CUDA runtime found). The unique id travels from rank 0 over MPI. Calls are enqueued on
// the legacy default stream, which orders them after the kernels libtorch queued there, and
// return after that stream synchronises: the buffer holds the result when a call returns.
#include <cuda_runtime.h>
#include <nccl.h>

#include "comm/collective.h"
#include "comm/mpi_check.h"

namespace cdmoe::comm {
namespace {

void check_cuda(cudaError_t code, const char* call) {
  if (code != cudaSuccess) throw_runtime(std::string(call) + " failed: " + cudaGetErrorString(code));
}

void check_nccl(ncclResult_t code, const char* call) {
  if (code != ncclSuccess) throw_runtime(std::string(call) + " failed: " + ncclGetErrorString(code));
}

ncclDataType_t nccl_type(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return ncclFloat32;
    case ElementType::kFloat64: return ncclFloat64;
    case ElementType::kInt64: return ncclInt64;
  }
  throw_runtime("nccl_type: unknown element type");
}

class NcclCollective : public Collective {
 public:
  explicit NcclCollective(int device) {
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCollective() override { ncclCommDestroy(comm_); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  void allreduce(void* buffer, size_t count, ElementType type, ReduceOp op) override {
    ncclRedOp_t nccl_op = op == ReduceOp::kMax ? ncclMax : op == ReduceOp::kAverage ? ncclAvg : ncclSum;
    if (op == ReduceOp::kAverage && type == ElementType::kInt64) throw_runtime("allreduce: an integer average is not defined");
    check_nccl(ncclAllReduce(buffer, buffer, count, nccl_type(type), nccl_op, comm_, cudaStreamLegacy), "ncclAllReduce");
    check_cuda(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
  }

  void broadcast(void* buffer, size_t count, ElementType type, int root) override {
    if (root < 0 || root >= size_) throw_runtime("broadcast: root " + std::to_string(root) + " outside the job");
    check_nccl(ncclBroadcast(buffer, buffer, count, nccl_type(type), root, comm_, cudaStreamLegacy), "ncclBroadcast");
    check_cuda(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
  }

 private:
  int rank_ = 0;
  int size_ = 1;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }
std::unique_ptr<Collective> make_nccl_collective(int device) { return std::make_unique<NcclCollective>(device); }

}  // namespace cdmoe::comm
