// The device the model-level tests run on: $CDMOE_TEST_DEVICE when set (cpu, cuda, cuda:N), else
// what `--device auto` picks: a GPU when this process sees one (a CUDA libtorch on a GPU
// machine), the CPU otherwise. So one `ctest` on a GPU machine checks the CUDA path with the
// same assertions and golden values; CDMOE_TEST_DEVICE=cpu checks the CPU path there too.
// Model outputs are brought to the host (.cpu()) before they meet host-side golden tensors.
#pragma once

#include <cstdlib>
#include <string>

#include <c10/core/Device.h>
#include <torch/csrc/lazy/ts_backend/ts_backend_impl.h>

#include "model/device.h"

namespace cdmoe::testing {

inline c10::Device test_device() {
  const char* forced = std::getenv("CDMOE_TEST_DEVICE");
  return c10::Device(forced && *forced ? std::string(forced) : model::device_for_this_process("auto", 0));
}

// A second device type on any machine: libtorch's lazy tensors ("lazy"; TorchScript computing on
// the CPU). A CPU tensor meeting one of its tensors in an operation stops the process (a CHECK
// failure), as next to a CUDA tensor it would raise, so device plumbing bugs show here without a
// GPU. Initialises the backend on first use.
inline c10::Device lazy_device() {
  static const bool ready = (torch::lazy::InitTorchScriptBackend(), true);
  (void)ready;
  return c10::Device("lazy");
}

}  // namespace cdmoe::testing
