// comm::Collective over MPI, run under `mpirun -np 2` by CTest (every rank runs every test):
// allreduce sum/average/max of each element type, broadcast from either root, a buffer of
// several buckets' size, and the one-rank backend leaving buffers alone.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "comm/collective.h"
#include "comm/mpi_transport.h"
#include "core/error.h"

namespace cdmoe::comm {
namespace {

Collective& world() {
  static int argc = 0;
  static char** argv = nullptr;
  static MpiSession session(&argc, &argv);
  static std::unique_ptr<Collective> collective = make_mpi_collective();
  return *collective;
}

TEST(MpiCollective, RunsOnTwoRanks) {
  EXPECT_EQ(world().size(), 2);
  EXPECT_EQ(world().backend(), "mpi");
  EXPECT_FALSE(world().device_buffers());
}

TEST(MpiCollective, AllreduceSumAverageMax) {
  Collective& c = world();
  const int r = c.rank();
  std::vector<float> f = {1.5f + r, -2.0f * (r + 1), 0.25f};
  c.allreduce(f.data(), f.size(), ElementType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(f, (std::vector<float>{4.0f, -6.0f, 0.5f}));
  std::vector<double> d = {1.0 + r, 10.0 * r};
  c.allreduce(d.data(), d.size(), ElementType::kFloat64, ReduceOp::kAverage);
  EXPECT_EQ(d, (std::vector<double>{1.5, 5.0}));
  std::vector<int64_t> i = {int64_t(r) * 7, -int64_t(r), int64_t(1) << 40};
  c.allreduce(i.data(), i.size(), ElementType::kInt64, ReduceOp::kMax);
  EXPECT_EQ(i, (std::vector<int64_t>{7, 0, int64_t(1) << 40}));
  EXPECT_EQ(c.allreduce_scalar(int64_t(r + 1), ReduceOp::kSum), 3);
  EXPECT_DOUBLE_EQ(c.allreduce_scalar(double(r), ReduceOp::kMax), 1.0);
  EXPECT_THROW(c.allreduce_scalar(int64_t(1), ReduceOp::kAverage), Error);
}

TEST(MpiCollective, LargeBufferAndBroadcastFromEitherRoot) {
  Collective& c = world();
  std::vector<float> big(size_t(9) << 20, float(c.rank() + 1));  // 36 MiB: more than one gradient bucket
  c.allreduce(big.data(), big.size(), ElementType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(big.front(), 3.0f);
  EXPECT_EQ(big.back(), 3.0f);
  for (int root = 0; root < c.size(); ++root) {
    std::vector<double> values = {double(c.rank()) + 0.5, double(c.rank()) * 3};
    c.broadcast(values.data(), values.size(), ElementType::kFloat64, root);
    EXPECT_EQ(values, (std::vector<double>{root + 0.5, root * 3.0})) << "root " << root;
  }
  double dummy = 0;
  EXPECT_THROW(c.broadcast(&dummy, 1, ElementType::kFloat64, 2), Error);
}

TEST(SingleCollective, LeavesBuffersAlone) {
  auto single = make_single_collective();
  std::vector<float> f = {1, 2};
  single->allreduce(f.data(), f.size(), ElementType::kFloat32, ReduceOp::kAverage);
  EXPECT_EQ(f, (std::vector<float>{1, 2}));
  EXPECT_EQ(single->size(), 1);
  EXPECT_FALSE(nccl_available() && single->device_buffers());
}

}  // namespace
}  // namespace cdmoe::comm
