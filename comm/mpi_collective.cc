// Collective over MPI_COMM_WORLD on host buffers. Blocking MPI_Allreduce/MPI_Bcast: the ranks
// of a data-parallel step arrive together, so the spin of MPI's progress loop is short. Counts
// above INT_MAX go in INT_MAX-element pieces.
#include <climits>
#include <cstdint>

#include "comm/collective.h"
#include "comm/mpi_check.h"

namespace cdmoe::comm {
namespace {

MPI_Datatype mpi_type(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return MPI_FLOAT;
    case ElementType::kFloat64: return MPI_DOUBLE;
    case ElementType::kInt64: return MPI_INT64_T;
  }
  throw_runtime("mpi_type: unknown element type");
}

class MpiCollective : public Collective {
 public:
  MpiCollective() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) throw_runtime("MPI collective: MPI is not initialised (create a comm::MpiSession first)");
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(void* buffer, size_t count, ElementType type, ReduceOp op) override {
    MPI_Op mpi_op = op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
    for_pieces(buffer, count, type, [&](void* piece, int n) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, piece, n, mpi_type(type), mpi_op, MPI_COMM_WORLD), "MPI_Allreduce");
    });
    if (op == ReduceOp::kAverage) divide(buffer, count, type);
  }

  void broadcast(void* buffer, size_t count, ElementType type, int root) override {
    if (root < 0 || root >= size_) throw_runtime("broadcast: root " + std::to_string(root) + " outside the job");
    for_pieces(buffer, count, type, [&](void* piece, int n) {
      check_mpi(MPI_Bcast(piece, n, mpi_type(type), root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }

 private:
  template <typename F>
  void for_pieces(void* buffer, size_t count, ElementType type, F&& call) {
    auto* bytes = static_cast<uint8_t*>(buffer);
    const size_t width = element_size(type);
    while (count > 0) {
      size_t n = std::min<size_t>(count, size_t(INT_MAX));
      call(bytes, int(n));
      bytes += n * width;
      count -= n;
    }
  }

  void divide(void* buffer, size_t count, ElementType type) const {
    switch (type) {
      case ElementType::kFloat32: {
        auto* values = static_cast<float*>(buffer);
        for (size_t i = 0; i < count; ++i) values[i] /= float(size_);
        return;
      }
      case ElementType::kFloat64: {
        auto* values = static_cast<double*>(buffer);
        for (size_t i = 0; i < count; ++i) values[i] /= double(size_);
        return;
      }
      case ElementType::kInt64: throw_runtime("allreduce: an integer average is not defined");
    }
  }

  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Collective> make_mpi_collective() { return std::make_unique<MpiCollective>(); }

}  // namespace cdmoe::comm
