// Timing for the benchmarks: the median wall-clock seconds of `runs` calls of `work` (the
// median, because this machine is shared and single runs are noisy).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace cdmoe::bench {

inline double median_seconds(int runs, const std::function<void()>& work) {
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    auto start = std::chrono::steady_clock::now();
    work();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace cdmoe::bench
