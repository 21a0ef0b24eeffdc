#include "core/paired_ratio.h"

#include <cmath>

#include "core/error.h"

namespace cdmoe {

double student_t_975(int degrees) {
  static const double table[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                                 2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                 2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (degrees < 1) throw_runtime("student_t_975: degrees of freedom must be at least 1");
  if (degrees <= 30) return table[degrees - 1];
  // Cornish-Fisher expansion of t around the normal quantile z.
  const double z = 1.959963984540054, n = degrees;
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n);
}

void PairedRatio::add(double a, double b) {
  if (!(a > 0) || !(b > 0) || !std::isfinite(a) || !std::isfinite(b)) throw_runtime("PairedRatio: timings must be positive");
  log_ratios_.push_back(std::log(a / b));
}

RatioInterval PairedRatio::interval() const {
  RatioInterval r;
  r.pairs = pairs();
  if (r.pairs == 0) return r;
  double mean = 0;
  for (double x : log_ratios_) mean += x;
  mean /= double(r.pairs);
  r.ratio = r.low = r.high = std::exp(mean);
  if (r.pairs < 2) return r;
  double squares = 0;
  for (double x : log_ratios_) squares += (x - mean) * (x - mean);
  const double standard_error = std::sqrt(squares / double(r.pairs - 1) / double(r.pairs));
  const double margin = student_t_975(r.pairs - 1) * standard_error;
  r.low = std::exp(mean - margin);
  r.high = std::exp(mean + margin);
  return r;
}

}  // namespace cdmoe
