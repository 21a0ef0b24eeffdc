#include "eval/row_kernels.h"

#include <cstdint>
#include <cstring>
#include <limits>

// Written with GCC/Clang vector extensions (eight float64 lanes: one AVX-512 register, two AVX2
// ones, four SSE2 ones) instead of libm calls, which no compiler vectorises without -ffast-math:
// scalar exp/log1p were most of a layer-selection candidate's time (BENCHMARKS.md).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CDMOE_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CDMOE_ROW_KERNEL
#endif
#define CDMOE_INLINE inline __attribute__((always_inline))
// Every helper taking or returning a vector is inlined, so no vector crosses a call: the ABI note
// GCC gives for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace cdmoe::eval::kernels {
namespace {

constexpr int kLanes = 8;
typedef double Vd __attribute__((vector_size(kLanes * sizeof(double))));
typedef int64_t Vi __attribute__((vector_size(kLanes * sizeof(int64_t))));
typedef float Vf __attribute__((vector_size(kLanes * sizeof(float))));

CDMOE_INLINE Vd splat(double x) { return Vd{} + x; }

CDMOE_INLINE Vd load(const double* p) {
  Vd v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

CDMOE_INLINE Vd load(const float* p) {
  Vf v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, Vd);
}

// The last n % kLanes values, the rest of the lanes `pad`.
template <typename T>
CDMOE_INLINE Vd load_tail(const T* p, int64_t count, double pad) {
  double lanes[kLanes];
  for (int i = 0; i < kLanes; ++i) lanes[i] = i < count ? double(p[i]) : pad;
  return load(lanes);
}

CDMOE_INLINE Vd vmax(Vd a, Vd b) { return a > b ? a : b; }
CDMOE_INLINE Vd vmin(Vd a, Vd b) { return a < b ? a : b; }
CDMOE_INLINE Vd vabs(Vd a) { return (Vd)((Vi)a & (Vi{} + INT64_MAX)); }

CDMOE_INLINE double lane_sum(Vd v) {
  double sum = 0;
  for (int i = 0; i < kLanes; ++i) sum += v[i];
  return sum;
}

// e^x − 1 and e^x for x ≤ ~709 (here always ≤ 0 up to rounding); below −708, where e^x leaves
// the normal range, e^x is 0 (the terms it scales are then far below a double's resolution of
// the sum). Range reduction x = k·ln 2 + r, |r| ≤ ln 2 / 2 (ln 2 split in two as fdlibm does),
// Taylor to degree 13 (truncation < 5e-18 relative), 2^k put into the exponent bits. e^x − 1 is
// the polynomial without its constant term when k = 0, so it keeps its precision near x = 0.
struct ExpParts {
  Vd minus_one, value;
};

CDMOE_INLINE ExpParts exp_parts(Vd x) {
  const auto underflow = x < -708.0;
  x = underflow ? splat(-708.0) : x;
  const double kShifter = 0x1.8p52;  // adding it rounds to an integer held in the low mantissa bits
  Vd shifted = x * 1.4426950408889634074 + kShifter;
  Vd k = shifted - kShifter;
  Vd r = x - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
  Vd poly = splat(1.0 / 6227020800.0);  // 1/13!
  poly = poly * r + 1.0 / 479001600.0;
  poly = poly * r + 1.0 / 39916800.0;
  poly = poly * r + 1.0 / 3628800.0;
  poly = poly * r + 1.0 / 362880.0;
  poly = poly * r + 1.0 / 40320.0;
  poly = poly * r + 1.0 / 5040.0;
  poly = poly * r + 1.0 / 720.0;
  poly = poly * r + 1.0 / 120.0;
  poly = poly * r + 1.0 / 24.0;
  poly = poly * r + 1.0 / 6.0;
  poly = poly * r + 0.5;
  poly = poly * r + 1.0;
  Vd em1_r = poly * r;  // e^r − 1
  int64_t shifter_bits;
  std::memcpy(&shifter_bits, &kShifter, sizeof shifter_bits);
  Vd scale = (Vd)((((Vi)shifted - shifter_bits) + 1023) << 52);
  Vd value = (em1_r + 1.0) * scale;
  Vd minus_one = k == 0.0 ? em1_r : value - 1.0;
  return {underflow ? splat(-1.0) : minus_one, underflow ? splat(0.0) : value};
}

CDMOE_INLINE Vd exp_of(Vd x) { return exp_parts(x).value; }

// log(1 + r) for 0 ≤ r ≤ 1: 2·atanh(z), z = r / (2 + r) ≤ 1/3, its series to z^35 (truncation
// < 2e-18 relative); no 1 + r is formed, so small r keep their precision.
CDMOE_INLINE Vd log1p_unit(Vd r) {
  Vd z = r / (r + 2.0), z2 = z * z;
  Vd poly = splat(1.0 / 35);
  for (int odd = 33; odd >= 1; odd -= 2) poly = poly * z2 + 1.0 / odd;
  return 2.0 * z * poly;
}

// The JS terms of eight lanes: with a = |lq − lp|, r = e^−a, the larger probability
// P = e^max(lp, lq), and t = log(2 / (1 + r)) = log1p(u), u = (1 − r)/(1 + r):
//   p(lp − lm) + q(lq − lm) = P·((1 + r)·t − r·a).
// Three exponentials/logs instead of five. For close distributions (a → 0) the two products
// cancel to ~P·a²/4, so 1 − r comes from e^−a − 1 (not 1 − e^−a) to keep t's relative
// precision: ~1e-16/a relative per term (the form with log m loses ~1e-16/a²). a = 0 gives
// exactly 0, and lp = −inf gives q·ln 2, as it should.
CDMOE_INLINE Vd js_lanes(Vd lp, Vd lq) {
  Vd a = vmin(vabs(lq - lp), splat(800.0));  // r is 0 beyond, and 0·a must stay 0
  ExpParts e = exp_parts(-a);                // e.minus_one = r − 1 ∈ [−1, 0]
  Vd t = log1p_unit(-e.minus_one / (e.minus_one + 2.0));
  return exp_of(vmax(lp, lq)) * ((e.minus_one + 2.0) * t - (e.minus_one + 1.0) * a);
}

// p (lp − lq), 0 where p is (0·(−inf − lq) would be NaN).
CDMOE_INLINE Vd kl_lanes(Vd lp, Vd lq) {
  Vd p = exp_of(lp);
  return p > 0.0 ? p * (lp - lq) : splat(0.0);
}

enum class Pair { kJs, kKl };

template <Pair kind>
CDMOE_INLINE Vd pair_lanes(Vd lp, Vd lq) { return kind == Pair::kJs ? js_lanes(lp, lq) : kl_lanes(lp, lq); }

template <Pair kind, typename R, typename C>
CDMOE_INLINE double pair_row(const R* ref, double ref_shift, const C* cand, double cand_shift, int64_t n) {
  Vd acc{};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) acc += pair_lanes<kind>(load(ref + c) - ref_shift, load(cand + c) - cand_shift);
  if (c < n) {  // padded lanes have lp = lq = 0, whose terms are 0 for both divergences
    acc += pair_lanes<kind>(load_tail(ref + c, n - c, ref_shift) - ref_shift,
                            load_tail(cand + c, n - c, cand_shift) - cand_shift);
  }
  return lane_sum(acc);
}

template <typename T>
CDMOE_INLINE double max_of(const T* row, int64_t n) {
  const double lowest = -std::numeric_limits<double>::infinity();
  Vd top = splat(lowest);
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) top = vmax(top, load(row + c));
  if (c < n) top = vmax(top, load_tail(row + c, n - c, lowest));
  double best = lowest;
  for (int i = 0; i < kLanes; ++i) best = top[i] > best ? top[i] : best;
  return best;
}

template <typename T>
CDMOE_INLINE double sum_exp_of(const T* row, double top, int64_t n) {
  Vd acc{};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) acc += exp_of(load(row + c) - top);
  if (c < n) acc += exp_of(load_tail(row + c, n - c, -std::numeric_limits<double>::infinity()) - top);
  return lane_sum(acc);
}

}  // namespace

CDMOE_ROW_KERNEL double js_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n) {
  return 0.5 * pair_row<Pair::kJs>(ref, ref_shift, cand, cand_shift, n);
}
CDMOE_ROW_KERNEL double js_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n) {
  return 0.5 * pair_row<Pair::kJs>(ref, ref_shift, cand, cand_shift, n);
}
CDMOE_ROW_KERNEL double js_row(const double* ref, double ref_shift, const float* cand, double cand_shift, int64_t n) {
  return 0.5 * pair_row<Pair::kJs>(ref, ref_shift, cand, cand_shift, n);
}
CDMOE_ROW_KERNEL double kl_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n) {
  return pair_row<Pair::kKl>(ref, ref_shift, cand, cand_shift, n);
}
CDMOE_ROW_KERNEL double kl_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n) {
  return pair_row<Pair::kKl>(ref, ref_shift, cand, cand_shift, n);
}
CDMOE_ROW_KERNEL double row_max(const float* row, int64_t n) { return max_of(row, n); }
CDMOE_ROW_KERNEL double row_max(const double* row, int64_t n) { return max_of(row, n); }
CDMOE_ROW_KERNEL double sum_exp_row(const float* row, double top, int64_t n) { return sum_exp_of(row, top, n); }
CDMOE_ROW_KERNEL double sum_exp_row(const double* row, double top, int64_t n) { return sum_exp_of(row, top, n); }

}  // namespace cdmoe::eval::kernels
