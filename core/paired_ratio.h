// PairedRatio: the ratio of two timings measured in interleaved pairs (A B, A B, ...), with its
// 95% confidence interval: the mean of log(a/b) over the pairs ± Student's t · its standard
// error, exponentiated. Pairing cancels drifts common to both sides of a pair (a shared
// machine's load); the log makes the interval symmetric for a ratio and its inverse.
// Seconds in, ratio a/b out (a speed-up when a is the original's time). Plain value type.
#pragma once

#include <cmath>
#include <vector>

namespace cdmoe {

struct RatioInterval {
  double ratio = 0;  // exp(mean log(a/b)): the geometric mean of the pairs' ratios
  double low = 0, high = 0;  // 95% interval; equal to ratio with fewer than 2 pairs
  int pairs = 0;
  // The interval's half-width relative to the ratio: high / ratio - 1 (= 1 - low / ratio in log space).
  double relative_half_width() const { return pairs < 2 ? INFINITY : high / ratio - 1; }
};

class PairedRatio {
 public:
  void add(double a, double b);  // one pair's timings, both > 0
  RatioInterval interval() const;
  int pairs() const { return int(log_ratios_.size()); }

 private:
  std::vector<double> log_ratios_;
};

// The 0.975 quantile of Student's t with `degrees` of freedom (≥ 1): exact table to 30, then
// the Cornish-Fisher expansion (error < 1e-4).
double student_t_975(int degrees);

}  // namespace cdmoe
