// How the speed metric (eval/metrics.cc) times a plan against the original: interleaved pairs
// (the order alternating: original first, then the plan first), at least min_pairs of them, then
// more until the 95% confidence interval of the speed-up (core/paired_ratio.h) is within
// ±target of it or max_seconds of timing have passed (an interval needs two pairs: with one,
// its bounds are not finite and are stored as NULL). Workloads:
//   "calibration"   one forward of the calibration batch (as padded), the sweep's default;
//   "prefill-2000"  the paper's protocol: one sequence of 2,000 tokens (the calibration text's
//                   tokens in order, repeated if short) at batch 1, the GPU synchronised.
// Torch-free: command lines (apps/) and worker options carry it.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"

namespace cdmoe::eval {

inline constexpr const char* kSpeedWorkloads[] = {"calibration", "prefill-2000"};
inline constexpr int64_t kPrefillTokens = 2000;

struct SpeedOptions {
  int min_pairs = 3;
  double target = 0.02;      // relative half-width of the interval to stop at
  double max_seconds = 30;   // timing time after which it stops, interval or not
  std::string workload = "calibration";

  // Bad input naming the command-line flag that is wrong.
  void validate() const {
    if (min_pairs < 1) throw_bad_input("--speed-repeats must be at least 1");
    if (!(target > 0)) throw_bad_input("--speed-ci must be positive (e.g. 0.02 for ±2%)");
    if (!(max_seconds >= 0)) throw_bad_input("--speed-max-s must be 0 or positive");
    for (const char* known : kSpeedWorkloads) {
      if (workload == known) return;
    }
    throw_bad_input("--speed-workload \"" + workload + "\" is not one of calibration, prefill-2000");
  }
};

}  // namespace cdmoe::eval
