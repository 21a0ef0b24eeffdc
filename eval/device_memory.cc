#include "eval/device_memory.h"

#include <fstream>
#include <string>

#ifdef CDMOE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/error.h"

namespace cdmoe::eval {

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return int64_t(std::stol(line.substr(6))) * 1024;  // the file says kB
  }
  return 0;
}

void reset_device_peak(const c10::Device& device) {
  if (!device.is_cuda()) return;
#ifdef CDMOE_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  throw_runtime("reset_device_peak: " + device.str() + " in a build without CUDA");
#endif
}

std::optional<int64_t> peak_device_allocated_bytes(const c10::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
#ifdef CDMOE_WITH_CUDA
  using c10::cuda::CUDACachingAllocator::StatType;
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[size_t(StatType::AGGREGATE)].peak;
#else
  throw_runtime("peak_device_allocated_bytes: " + device.str() + " in a build without CUDA");
#endif
}

}  // namespace cdmoe::eval
