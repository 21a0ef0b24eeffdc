// The backend-independent part of comm::Collective and the single-rank backend.
#include "comm/collective.h"

#include "core/error.h"

namespace cdmoe::comm {

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return 4;
    case ElementType::kFloat64: return 8;
    case ElementType::kInt64: return 8;
  }
  throw_runtime("element_size: unknown element type");
}

double Collective::allreduce_scalar(double value, ReduceOp op) {
  if (device_buffers()) throw_runtime("allreduce_scalar: not available on a device-buffer backend; reduce a device tensor");
  allreduce(&value, 1, ElementType::kFloat64, op);
  return value;
}

int64_t Collective::allreduce_scalar(int64_t value, ReduceOp op) {
  if (device_buffers()) throw_runtime("allreduce_scalar: not available on a device-buffer backend; reduce a device tensor");
  if (op == ReduceOp::kAverage) throw_runtime("allreduce_scalar: an integer average is not defined");
  allreduce(&value, 1, ElementType::kInt64, op);
  return value;
}

namespace {

class SingleCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void allreduce(void*, size_t, ElementType, ReduceOp) override {}
  void broadcast(void*, size_t, ElementType, int root) override {
    if (root != 0) throw_runtime("broadcast: root " + std::to_string(root) + " of a one-rank job");
  }
};

}  // namespace

std::unique_ptr<Collective> make_single_collective() { return std::make_unique<SingleCollective>(); }

}  // namespace cdmoe::comm
