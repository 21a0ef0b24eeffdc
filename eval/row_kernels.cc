#include "eval/row_kernels.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

// Written with GCC/Clang vector extensions instead of libm calls, which no compiler vectorises
// without -ffast-math: scalar exp/log1p were most of a layer-selection candidate's time
// (BENCHMARKS.md). Each kernel is compiled once per instruction set (the helpers below are
// inlined into each) and called through a table chosen once: what the CPU runs best, or
// CDMOE_ROW_KERNELS, so that tests and benchmarks reach every variant on one machine.
//
// Every variant works on blocks of eight values, as registers of its native width: one of eight
// float64 lanes (AVX-512), two of four (AVX2), four of two (SSE2, the baseline). A vector wider
// than the target's registers is not split by GCC but lowered lane by lane to scalar code (the
// AVX2 build of an eight-lane vector ran at the baseline's speed, 5-10x below AVX-512:
// BENCHMARKS.md), so the width must be native. Value c + i of a row always takes lane i of the
// block through the same operations and the lanes are summed in the same order, so the AVX2 and
// AVX-512 variants give bitwise the same results (both contract multiply-adds to FMA); the
// baseline, which has no FMA, may differ from them in the last bits.
#if defined(__x86_64__) && defined(__GNUC__)
#define CDMOE_X86_VARIANTS 1
#endif
// Every helper taking or returning a vector is inlined, so no vector crosses a call: the ABI note
// GCC gives for them does not apply (eval/CMakeLists.txt turns it off for this file).
#define CDMOE_INLINE inline __attribute__((always_inline))

namespace cdmoe::eval::kernels {
namespace {

constexpr int kBlock = 8;  // values per step of every loop, in every variant

// Registers of `kWidth` float64 lanes, and a block of eight values as kBlock / kWidth of them.
template <int kWidth>
struct Simd {
  static_assert(kBlock % kWidth == 0);
  typedef double Vd __attribute__((vector_size(kWidth * sizeof(double))));
  typedef float Vf __attribute__((vector_size(kWidth * sizeof(float))));
  static constexpr int kParts = kBlock / kWidth;
  struct Block {
    Vd part[kParts];
  };
};

// The int64 vector of a double vector's lanes (what comparing two of them gives).
template <typename Vd>
using IntOf = decltype(Vd{} < Vd{});

template <typename Vd>
CDMOE_INLINE Vd splat(double x) {
  return Vd{} + x;
}

template <int W>
CDMOE_INLINE typename Simd<W>::Vd load(const double* p) {
  typename Simd<W>::Vd v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int W>
CDMOE_INLINE typename Simd<W>::Vd load(const float* p) {
  typename Simd<W>::Vf v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, typename Simd<W>::Vd);
}

// Values c .. c + 7 of a row, shifted: value - shift.
template <int W, typename T>
CDMOE_INLINE typename Simd<W>::Block load_block(const T* p, double shift) {
  typename Simd<W>::Block b;
  for (int k = 0; k < Simd<W>::kParts; ++k) b.part[k] = load<W>(p + k * W) - shift;
  return b;
}

// The last n % 8 values, the rest of the block `pad`, shifted.
template <int W, typename T>
CDMOE_INLINE typename Simd<W>::Block load_tail(const T* p, int64_t count, double pad, double shift) {
  double lanes[kBlock];
  for (int i = 0; i < kBlock; ++i) lanes[i] = i < count ? double(p[i]) : pad;
  return load_block<W>(lanes, shift);
}

template <typename Vd>
CDMOE_INLINE Vd vmax(Vd a, Vd b) {
  return a > b ? a : b;
}
template <typename Vd>
CDMOE_INLINE Vd vmin(Vd a, Vd b) {
  return a < b ? a : b;
}
template <typename Vd>
CDMOE_INLINE Vd vabs(Vd a) {
  using Vi = IntOf<Vd>;
  return (Vd)((Vi)a & (Vi{} + INT64_MAX));
}

// The sum of a block's eight lanes in lane order (the same additions in every variant).
template <int W>
CDMOE_INLINE double lane_sum(const typename Simd<W>::Block& b) {
  double sum = 0;
  for (int k = 0; k < Simd<W>::kParts; ++k) {
    for (int i = 0; i < W; ++i) sum += b.part[k][i];
  }
  return sum;
}

// e^x − 1 and e^x for x ≤ ~709 (here always ≤ 0 up to rounding); below −708, where e^x leaves
// the normal range, e^x is 0 (the terms it scales are then far below a double's resolution of
// the sum). Range reduction x = k·ln 2 + r, |r| ≤ ln 2 / 2 (ln 2 split in two as fdlibm does),
// Taylor to degree 13 (truncation < 5e-18 relative), 2^k put into the exponent bits. e^x − 1 is
// the polynomial without its constant term when k = 0, so it keeps its precision near x = 0.
template <typename Vd>
struct ExpParts {
  Vd minus_one, value;
};

template <typename Vd>
CDMOE_INLINE ExpParts<Vd> exp_parts(Vd x) {
  using Vi = IntOf<Vd>;
  const auto underflow = x < -708.0;
  x = underflow ? splat<Vd>(-708.0) : x;
  const double kShifter = 0x1.8p52;  // adding it rounds to an integer held in the low mantissa bits
  Vd shifted = x * 1.4426950408889634074 + kShifter;
  Vd k = shifted - kShifter;
  Vd r = x - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
  Vd poly = splat<Vd>(1.0 / 6227020800.0);  // 1/13!
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
  // A reinterpretation of the bits (no conversion): 2^k built in the exponent field.
  Vd scale = (Vd)((((Vi)shifted - shifter_bits) + 1023) << 52);
  Vd value = (em1_r + 1.0) * scale;
  Vd minus_one = k == 0.0 ? em1_r : value - 1.0;
  return {underflow ? splat<Vd>(-1.0) : minus_one, underflow ? splat<Vd>(0.0) : value};
}

template <typename Vd>
CDMOE_INLINE Vd exp_of(Vd x) {
  return exp_parts(x).value;
}

// log(1 + r) for 0 ≤ r ≤ 1: 2·atanh(z), z = r / (2 + r) ≤ 1/3, its series to z^35 (truncation
// < 2e-18 relative); no 1 + r is formed, so small r keep their precision.
template <typename Vd>
CDMOE_INLINE Vd log1p_unit(Vd r) {
  Vd z = r / (r + 2.0), z2 = z * z;
  Vd poly = splat<Vd>(1.0 / 35);
  for (int odd = 33; odd >= 1; odd -= 2) poly = poly * z2 + 1.0 / odd;
  return 2.0 * z * poly;
}

// The JS terms of a register's lanes: with a = |lq − lp|, r = e^−a, the larger probability
// P = e^max(lp, lq), and t = log(2 / (1 + r)) = log1p(u), u = (1 − r)/(1 + r):
//   p(lp − lm) + q(lq − lm) = P·((1 + r)·t − r·a).
// Three exponentials/logs instead of five. For close distributions (a → 0) the two products
// cancel to ~P·a²/4, so 1 − r comes from e^−a − 1 (not 1 − e^−a) to keep t's relative
// precision: ~1e-16/a relative per term (the form with log m loses ~1e-16/a²). a = 0 gives
// exactly 0, and lp = −inf gives q·ln 2, as it should.
template <typename Vd>
CDMOE_INLINE Vd js_lanes(Vd lp, Vd lq) {
  Vd a = vmin(vabs(lq - lp), splat<Vd>(800.0));  // r is 0 beyond, and 0·a must stay 0
  ExpParts<Vd> e = exp_parts(-a);                // e.minus_one = r − 1 ∈ [−1, 0]
  Vd t = log1p_unit(-e.minus_one / (e.minus_one + 2.0));
  return exp_of(vmax(lp, lq)) * ((e.minus_one + 2.0) * t - (e.minus_one + 1.0) * a);
}

// The same terms with both probabilities given (p = e^lp and q = e^lq, already at hand): the
// larger is P, which spares js_lanes' third exponential.
template <typename Vd>
CDMOE_INLINE Vd js_lanes_given(Vd lp, Vd lq, Vd p, Vd q) {
  Vd a = vmin(vabs(lq - lp), splat<Vd>(800.0));
  ExpParts<Vd> e = exp_parts(-a);
  Vd t = log1p_unit(-e.minus_one / (e.minus_one + 2.0));
  return vmax(p, q) * ((e.minus_one + 2.0) * t - (e.minus_one + 1.0) * a);
}

// p (lp − lq), 0 where p is (0·(−inf − lq) would be NaN).
template <typename Vd>
CDMOE_INLINE Vd kl_lanes(Vd lp, Vd lq) {
  Vd p = exp_of(lp);
  return p > 0.0 ? p * (lp - lq) : splat<Vd>(0.0);
}

enum class Pair { kJs, kKl };

template <Pair kind, int W>
CDMOE_INLINE void add_pair_terms(typename Simd<W>::Block& acc, const typename Simd<W>::Block& lp, const typename Simd<W>::Block& lq) {
  for (int k = 0; k < Simd<W>::kParts; ++k) {
    acc.part[k] += kind == Pair::kJs ? js_lanes(lp.part[k], lq.part[k]) : kl_lanes(lp.part[k], lq.part[k]);
  }
}

template <Pair kind, int W, typename R, typename C>
CDMOE_INLINE double pair_row(const R* ref, double ref_shift, const C* cand, double cand_shift, int64_t n) {
  typename Simd<W>::Block acc{};
  int64_t c = 0;
  for (; c + kBlock <= n; c += kBlock) add_pair_terms<kind, W>(acc, load_block<W>(ref + c, ref_shift), load_block<W>(cand + c, cand_shift));
  if (c < n) {  // padded lanes have lp = lq = 0, whose terms are 0 for both divergences
    add_pair_terms<kind, W>(acc, load_tail<W>(ref + c, n - c, ref_shift, ref_shift), load_tail<W>(cand + c, n - c, cand_shift, cand_shift));
  }
  return lane_sum<W>(acc);
}

// js-hidden's JS of a row: the reference's log-probabilities and probabilities given, the
// candidate's log-probabilities cand − cand_shift with probabilities cand_exps · cand_scale.
template <int W, typename C>
CDMOE_INLINE double js_row_given(const double* log_p, const double* p, const C* cand, double cand_shift, const double* cand_exps,
                                 double cand_scale, int64_t n) {
  using Block = typename Simd<W>::Block;
  Block acc{};
  auto add = [&](const Block& lp, const Block& lq, const Block& pp, const Block& qq) {
    for (int k = 0; k < Simd<W>::kParts; ++k) acc.part[k] += js_lanes_given(lp.part[k], lq.part[k], pp.part[k], qq.part[k] * cand_scale);
  };
  int64_t c = 0;
  for (; c + kBlock <= n; c += kBlock) {
    add(load_block<W>(log_p + c, 0.0), load_block<W>(cand + c, cand_shift), load_block<W>(p + c, 0.0), load_block<W>(cand_exps + c, 0.0));
  }
  if (c < n) {  // padded lanes: lp = lq = 0 (a = 0), whose terms are 0 whatever p and q
    add(load_tail<W>(log_p + c, n - c, 0.0, 0.0), load_tail<W>(cand + c, n - c, cand_shift, cand_shift),
        load_tail<W>(p + c, n - c, 0.0, 0.0), load_tail<W>(cand_exps + c, n - c, 0.0, 0.0));
  }
  return lane_sum<W>(acc);
}

template <int W, typename T>
CDMOE_INLINE double max_of(const T* row, int64_t n) {
  const double lowest = -std::numeric_limits<double>::infinity();
  typename Simd<W>::Block top;
  for (int k = 0; k < Simd<W>::kParts; ++k) top.part[k] = splat<typename Simd<W>::Vd>(lowest);
  auto take = [&](const typename Simd<W>::Block& b) {
    for (int k = 0; k < Simd<W>::kParts; ++k) top.part[k] = vmax(top.part[k], b.part[k]);
  };
  int64_t c = 0;
  for (; c + kBlock <= n; c += kBlock) take(load_block<W>(row + c, 0.0));
  if (c < n) take(load_tail<W>(row + c, n - c, lowest, 0.0));
  double best = lowest;
  for (int k = 0; k < Simd<W>::kParts; ++k) {
    for (int i = 0; i < W; ++i) best = top.part[k][i] > best ? top.part[k][i] : best;
  }
  return best;
}

// Σ e^(row − top), and each e^(row[c] − top) into exps[c] when exps is given.
template <int W, typename T>
CDMOE_INLINE double sum_exp_of(const T* row, double top, int64_t n, double* exps) {
  typename Simd<W>::Block acc{};
  auto add = [&](const typename Simd<W>::Block& b, int64_t at, int64_t count) {
    double values[kBlock];
    for (int k = 0; k < Simd<W>::kParts; ++k) {
      typename Simd<W>::Vd e = exp_of(b.part[k]);
      acc.part[k] += e;
      std::memcpy(values + k * W, &e, sizeof e);
    }
    if (exps) std::memcpy(exps + at, values, size_t(count) * sizeof(double));
  };
  int64_t c = 0;
  for (; c + kBlock <= n; c += kBlock) add(load_block<W>(row + c, top), c, kBlock);
  if (c < n) add(load_tail<W>(row + c, n - c, -std::numeric_limits<double>::infinity(), top), c, n - c);
  return lane_sum<W>(acc);
}

// The public kernels of one instruction set: `attributes` compiles them for it, with registers
// of W float64 lanes.
#define CDMOE_DEFINE_ROW_KERNELS(attributes, W)                                                                     \
  attributes double js_ff(const float* r, double rs, const float* c, double cs, int64_t n) {                       \
    return 0.5 * pair_row<Pair::kJs, W>(r, rs, c, cs, n);                                                          \
  }                                                                                                                \
  attributes double js_dd(const double* r, double rs, const double* c, double cs, int64_t n) {                     \
    return 0.5 * pair_row<Pair::kJs, W>(r, rs, c, cs, n);                                                          \
  }                                                                                                                \
  attributes double js_given_f(const double* lp, const double* p, const float* c, double cs, const double* e, double es,   \
                                int64_t n) {                                                                       \
    return 0.5 * js_row_given<W>(lp, p, c, cs, e, es, n);                                                          \
  }                                                                                                                \
  attributes double js_given_d(const double* lp, const double* p, const double* c, double cs, const double* e, double es,  \
                                int64_t n) {                                                                       \
    return 0.5 * js_row_given<W>(lp, p, c, cs, e, es, n);                                                          \
  }                                                                                                                \
  attributes double kl_ff(const float* r, double rs, const float* c, double cs, int64_t n) {                       \
    return pair_row<Pair::kKl, W>(r, rs, c, cs, n);                                                                \
  }                                                                                                                \
  attributes double kl_dd(const double* r, double rs, const double* c, double cs, int64_t n) {                     \
    return pair_row<Pair::kKl, W>(r, rs, c, cs, n);                                                                \
  }                                                                                                                \
  attributes double max_f(const float* row, int64_t n) { return max_of<W>(row, n); }                               \
  attributes double max_d(const double* row, int64_t n) { return max_of<W>(row, n); }                              \
  attributes double sum_exp_f(const float* row, double top, int64_t n, double* e) { return sum_exp_of<W>(row, top, n, e); }  \
  attributes double sum_exp_d(const double* row, double top, int64_t n, double* e) { return sum_exp_of<W>(row, top, n, e); } \
  const Table table = {js_ff, js_dd, js_given_f, js_given_d, kl_ff, kl_dd, max_f, max_d, sum_exp_f, sum_exp_d};

struct Table {
  double (*js_ff)(const float*, double, const float*, double, int64_t);
  double (*js_dd)(const double*, double, const double*, double, int64_t);
  double (*js_given_f)(const double*, const double*, const float*, double, const double*, double, int64_t);
  double (*js_given_d)(const double*, const double*, const double*, double, const double*, double, int64_t);
  double (*kl_ff)(const float*, double, const float*, double, int64_t);
  double (*kl_dd)(const double*, double, const double*, double, int64_t);
  double (*max_f)(const float*, int64_t);
  double (*max_d)(const double*, int64_t);
  double (*sum_exp_f)(const float*, double, int64_t, double*);
  double (*sum_exp_d)(const double*, double, int64_t, double*);
};

namespace baseline {
CDMOE_DEFINE_ROW_KERNELS(, 2)  // SSE2's 128-bit registers (every x86-64; NEON's on ARM64)
}
#ifdef CDMOE_X86_VARIANTS
namespace avx2 {
CDMOE_DEFINE_ROW_KERNELS(__attribute__((target("arch=x86-64-v3"))), 4)
}
namespace avx512 {
CDMOE_DEFINE_ROW_KERNELS(__attribute__((target("arch=x86-64-v4"))), 8)
}
#endif

bool cpu_runs(RowKernelIsa isa) {
#ifdef CDMOE_X86_VARIANTS
  __builtin_cpu_init();
  if (isa == RowKernelIsa::kAvx512) return __builtin_cpu_supports("x86-64-v4");
  if (isa == RowKernelIsa::kAvx2) return __builtin_cpu_supports("x86-64-v3");
  return true;
#else
  return isa == RowKernelIsa::kBaseline;
#endif
}

const Table& table_of(RowKernelIsa isa) {
#ifdef CDMOE_X86_VARIANTS
  if (isa == RowKernelIsa::kAvx512) return avx512::table;
  if (isa == RowKernelIsa::kAvx2) return avx2::table;
#endif
  return baseline::table;
}

// The best this CPU runs, unless CDMOE_ROW_KERNELS names another it runs (a name it cannot run,
// or an unknown one, is reported once on stderr and the best is used).
RowKernelIsa initial_isa() {
  const std::vector<RowKernelIsa> runnable = supported_row_kernel_isas();
  const char* forced = std::getenv("CDMOE_ROW_KERNELS");
  if (!forced || !*forced || std::string(forced) == "auto") return runnable.front();
  for (RowKernelIsa isa : runnable) {
    if (row_kernel_isa_name(isa) == std::string(forced)) return isa;
  }
  std::fprintf(stderr, "cdmoe: CDMOE_ROW_KERNELS=%s is not one this CPU runs; using %s\n", forced,
               row_kernel_isa_name(runnable.front()));
  return runnable.front();
}

std::atomic<RowKernelIsa>& current_isa() {
  static std::atomic<RowKernelIsa> isa{initial_isa()};
  return isa;
}

const Table& active() { return table_of(current_isa().load(std::memory_order_relaxed)); }

}  // namespace

const char* row_kernel_isa_name(RowKernelIsa isa) {
  switch (isa) {
    case RowKernelIsa::kAvx512: return "avx512";
    case RowKernelIsa::kAvx2: return "avx2";
    case RowKernelIsa::kBaseline: return "baseline";
  }
  return "baseline";
}

std::vector<RowKernelIsa> supported_row_kernel_isas() {
  std::vector<RowKernelIsa> out;
  for (RowKernelIsa isa : {RowKernelIsa::kAvx512, RowKernelIsa::kAvx2, RowKernelIsa::kBaseline}) {
    if (cpu_runs(isa)) out.push_back(isa);
  }
  return out;
}

RowKernelIsa row_kernel_isa() { return current_isa().load(); }

void use_row_kernel_isa(RowKernelIsa isa) {
  if (!cpu_runs(isa)) {
    throw std::invalid_argument(std::string("this CPU cannot run the ") + row_kernel_isa_name(isa) + " row kernels");
  }
  current_isa().store(isa);
}

double js_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n) {
  return active().js_ff(ref, ref_shift, cand, cand_shift, n);
}
double js_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n) {
  return active().js_dd(ref, ref_shift, cand, cand_shift, n);
}
double js_row(const double* log_p, const double* p, const float* cand, double cand_shift, const double* cand_exps,
              double cand_exp_scale, int64_t n) {
  return active().js_given_f(log_p, p, cand, cand_shift, cand_exps, cand_exp_scale, n);
}
double js_row(const double* log_p, const double* p, const double* cand, double cand_shift, const double* cand_exps,
              double cand_exp_scale, int64_t n) {
  return active().js_given_d(log_p, p, cand, cand_shift, cand_exps, cand_exp_scale, n);
}
double kl_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n) {
  return active().kl_ff(ref, ref_shift, cand, cand_shift, n);
}
double kl_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n) {
  return active().kl_dd(ref, ref_shift, cand, cand_shift, n);
}
double row_max(const float* row, int64_t n) { return active().max_f(row, n); }
double row_max(const double* row, int64_t n) { return active().max_d(row, n); }
double sum_exp_row(const float* row, double top, int64_t n, double* exps) { return active().sum_exp_f(row, top, n, exps); }
double sum_exp_row(const double* row, double top, int64_t n, double* exps) { return active().sum_exp_d(row, top, n, exps); }

}  // namespace cdmoe::eval::kernels
