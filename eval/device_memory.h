// Peak memory of the device a model computes on, for the memory metric. CPU: the process's
// peak resident set (VmHWM, since the process started). CUDA: the caching allocator's peak of
// allocated bytes on that device since the last reset_device_peak (evaluate() resets it, so the
// value covers one evaluation, the resident weights included); available only in a build
// against a CUDA libtorch (CDMOE_WITH_CUDA, set by eval/CMakeLists.txt when it finds c10_cuda).
// Thread-safe as the allocator is.
#pragma once

#include <cstdint>
#include <optional>

#include <c10/core/Device.h>

namespace cdmoe::eval {

int64_t peak_rss_bytes();
void reset_device_peak(const c10::Device& device);  // no-op for the CPU
// The peak allocated bytes on a CUDA device; nullopt for the CPU. A CUDA device in a build
// without CUDA support is an error (it cannot happen: such a build has no CUDA tensors).
std::optional<int64_t> peak_device_allocated_bytes(const c10::Device& device);

}  // namespace cdmoe::eval
