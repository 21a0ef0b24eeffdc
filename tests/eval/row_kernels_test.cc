// The vectorised row kernels against plain scalar loops in quadruple precision (the formulas
// divergence.cc used before them), on rows of every tail length, wide and narrow spreads,
// identical rows, −inf entries and both input types: each variant this CPU runs (AVX-512, AVX2,
// the baseline), so an AVX-512 machine checks the code an AVX2-only one runs.
#include "eval/row_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <quadmath.h>

namespace cdmoe::eval::kernels {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double scalar_max(const std::vector<double>& row) {
  double top = -kInf;
  for (double v : row) top = std::max(top, v);
  return top;
}

double scalar_lse(const std::vector<double>& row) {
  double top = scalar_max(row), sum = 0;
  for (double v : row) sum += std::exp(v - top);
  return top + std::log(sum);
}

// Σ 0.5·[p(lp − lm) + q(lq − lm)] in quadruple precision (libquadmath, 113-bit mantissa), log m
// from the log-probabilities as divergence.cc had it in double: the reference the kernels must
// meet (in double that form itself loses ~1e-16·|lm|/|lp − lq| relative for close rows).
double scalar_js(const std::vector<double>& ref, double ref_shift, const std::vector<double>& cand, double cand_shift) {
  __float128 acc = 0;
  for (size_t c = 0; c < ref.size(); ++c) {
    __float128 lp = ref[c] - ref_shift, lq = cand[c] - cand_shift;  // formed in double, as the kernels do
    __float128 hi = lp > lq ? lp : lq, lo = lp > lq ? lq : lp;
    __float128 log_m = hi + log1pq(expq(lo - hi)) - logq(__float128(2));
    __float128 p = expq(lp), q = expq(lq);
    acc += __float128(0.5) * ((p > 0 ? p * (lp - log_m) : __float128(0)) + (q > 0 ? q * (lq - log_m) : __float128(0)));
  }
  return double(acc);
}

double scalar_kl(const std::vector<double>& ref, double ref_shift, const std::vector<double>& cand, double cand_shift) {
  __float128 acc = 0;
  for (size_t c = 0; c < ref.size(); ++c) {
    __float128 lp = ref[c] - ref_shift, lq = cand[c] - cand_shift;
    acc += expq(lp) * (lp - lq);
  }
  return double(acc);
}

// Σ max(p, q)·|lp − lq|: the size of the terms that cancel to a JS or KL of close rows, of
// which double arithmetic loses ~1e-16.
double cancelling_scale(const std::vector<double>& ref, double ref_shift, const std::vector<double>& cand, double cand_shift) {
  double scale = 0;
  for (size_t c = 0; c < ref.size(); ++c) {
    double lp = ref[c] - ref_shift, lq = cand[c] - cand_shift;
    scale += std::exp(std::max(lp, lq)) * std::abs(lp - lq);
  }
  return scale;
}

std::vector<float> as_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<double> as_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

void expect_close(double got, double want, double rel, const std::string& what) {
  EXPECT_NEAR(got, want, rel * std::max(std::abs(want), 1e-300)) << what;
}

// A reference row and a candidate near it (`spread`: logit scale; `noise`: how far apart).
struct Rows {
  std::vector<double> ref, cand;
};

Rows random_rows(std::mt19937_64& rng, int64_t n, double spread, double noise) {
  std::normal_distribution<double> normal;
  Rows rows;
  for (int64_t c = 0; c < n; ++c) {
    rows.ref.push_back(spread * normal(rng));
    rows.cand.push_back(rows.ref.back() + noise * normal(rng));
  }
  return rows;
}

// Runs the kernels of one instruction set, putting back the one in use after.
class RowKernels : public ::testing::TestWithParam<RowKernelIsa> {
 protected:
  void SetUp() override {
    before_ = row_kernel_isa();
    use_row_kernel_isa(GetParam());
  }
  void TearDown() override { use_row_kernel_isa(before_); }

 private:
  RowKernelIsa before_ = RowKernelIsa::kBaseline;
};

TEST_P(RowKernels, AgreeWithScalarLoopsAtEveryTailLength) {
  std::mt19937_64 rng(7);
  for (int64_t n = 1; n <= 40; ++n) {
    for (double spread : {0.5, 4.0, 30.0}) {
      for (double noise : {1e-4, 0.1, 3.0}) {
        Rows rows = random_rows(rng, n, spread, noise);
        // float inputs: compare with the scalar loops on the same (float-rounded) values
        std::vector<float> ref_f = as_float(rows.ref), cand_f = as_float(rows.cand);
        std::vector<double> ref = as_double(ref_f), cand = as_double(cand_f);
        double lse_p = scalar_lse(ref), lse_q = scalar_lse(cand);
        std::string what = "n " + std::to_string(n) + " spread " + std::to_string(spread) + " noise " + std::to_string(noise);
        const double tol = 1e-14 * cancelling_scale(ref, lse_p, cand, lse_q);
        const double js = scalar_js(ref, lse_p, cand, lse_q), kl = scalar_kl(ref, lse_p, cand, lse_q);
        EXPECT_NEAR(js_row(ref_f.data(), lse_p, cand_f.data(), lse_q, n), js, 1e-13 * std::abs(js) + tol) << "js float " << what;
        EXPECT_NEAR(js_row(ref.data(), lse_p, cand.data(), lse_q, n), js, 1e-13 * std::abs(js) + tol) << "js double " << what;
        // js-hidden's form: the reference's log-probabilities and probabilities prepared, the
        // candidate's probabilities from the exponentials sum_exp_row stores.
        std::vector<double> log_p(ref.size()), p(ref.size()), exps(cand.size(), -1.0);
        for (size_t c = 0; c < ref.size(); ++c) log_p[c] = ref[c] - lse_p, p[c] = std::exp(log_p[c]);
        const double top_q = scalar_max(cand);
        const double sum_q = sum_exp_row(cand_f.data(), top_q, n, exps.data());
        for (size_t c = 0; c < cand.size(); ++c) {
          EXPECT_NEAR(exps[c], std::exp(cand[c] - top_q), 4e-16 * std::exp(cand[c] - top_q)) << "stored exp " << c << " " << what;
        }
        const double lse_stored = top_q + std::log(sum_q);
        const double js_stored = scalar_js(ref, lse_p, cand, lse_stored);
        EXPECT_NEAR(js_row(log_p.data(), p.data(), cand_f.data(), lse_stored, exps.data(), std::exp(top_q - lse_stored), n), js_stored,
                    1e-13 * std::abs(js_stored) + 1e-14 * cancelling_scale(ref, lse_p, cand, lse_stored))
            << "js given float " << what;
        EXPECT_NEAR(js_row(log_p.data(), p.data(), cand.data(), lse_stored, exps.data(), std::exp(top_q - lse_stored), n), js_stored,
                    1e-13 * std::abs(js_stored) + 1e-14 * cancelling_scale(ref, lse_p, cand, lse_stored))
            << "js given double " << what;
        EXPECT_NEAR(kl_row(ref_f.data(), lse_p, cand_f.data(), lse_q, n), kl, 1e-13 * std::abs(kl) + tol) << "kl float " << what;
        EXPECT_NEAR(kl_row(ref.data(), lse_p, cand.data(), lse_q, n), kl, 1e-13 * std::abs(kl) + tol) << "kl double " << what;
        EXPECT_EQ(row_max(ref_f.data(), n), scalar_max(ref)) << what;
        EXPECT_EQ(row_max(ref.data(), n), scalar_max(ref)) << what;
        double top = scalar_max(cand), sum = 0;
        for (double v : cand) sum += std::exp(v - top);
        expect_close(sum_exp_row(cand_f.data(), top, n), sum, 1e-14, "sum_exp float " + what);
        expect_close(sum_exp_row(cand.data(), top, n), sum, 1e-14, "sum_exp double " + what);
      }
    }
  }
}

TEST_P(RowKernels, ExponentialMatchesLibmOverItsRange) {
  // sum_exp_row of one value is that value's exponential: check it across [−708, 0] and
  // beyond the underflow edge, where it is 0 (std::exp gives denormals there).
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> uniform(-708.0, 0.0);
  double worst = 0;
  for (int i = 0; i < 20000; ++i) {
    double x = i < 10 ? -double(i) * 0.1 : uniform(rng);
    double got = sum_exp_row(&x, 0.0, 1), want = std::exp(x);
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 4e-16);  // two units in the last place at most
  double deep = -750.0, minus_inf = -kInf;
  EXPECT_EQ(sum_exp_row(&deep, 0.0, 1), 0.0);
  EXPECT_EQ(sum_exp_row(&minus_inf, 0.0, 1), 0.0);
}

TEST_P(RowKernels, IdenticalRowsDivergeByNothingAndTheJsIsBounded) {
  std::mt19937_64 rng(11);
  Rows rows = random_rows(rng, 1000, 5.0, 0.0);
  double lse = scalar_lse(rows.ref);
  EXPECT_NEAR(js_row(rows.ref.data(), lse, rows.ref.data(), lse, 1000), 0.0, 1e-15);
  EXPECT_NEAR(kl_row(rows.ref.data(), lse, rows.ref.data(), lse, 1000), 0.0, 1e-15);
  // Disjoint supports: the JS reaches its bound ln 2, with −inf log-probabilities on each side.
  std::vector<double> p = {0.0, -kInf, 0.0, -kInf}, q = {-kInf, 0.0, -kInf, 0.0};
  double lse_two = std::log(2.0);
  EXPECT_NEAR(js_row(p.data(), lse_two, q.data(), lse_two, 4), std::log(2.0), 1e-15);
  EXPECT_EQ(kl_row(p.data(), lse_two, q.data(), lse_two, 4), kInf);
}

TEST_P(RowKernels, RowMaxOfNothingIsMinusInfinity) {
  double unused = 1.0;
  EXPECT_EQ(row_max(&unused, 0), -kInf);
  EXPECT_EQ(sum_exp_row(&unused, 0.0, 0), 0.0);
  EXPECT_EQ(js_row(&unused, 0.0, &unused, 0.0, 0), 0.0);
}

INSTANTIATE_TEST_SUITE_P(ThisCpu, RowKernels, ::testing::ValuesIn(supported_row_kernel_isas()),
                         [](const ::testing::TestParamInfo<RowKernelIsa>& info) { return std::string(row_kernel_isa_name(info.param)); });

// AVX2 and AVX-512 take every value through the same lane and the same operations (FMA in
// both): bitwise the same sums, so a search's choices do not depend on which of the two ran.
TEST(RowKernelDispatch, Avx2AndAvx512GiveBitwiseTheSameResults) {
  std::vector<RowKernelIsa> runnable = supported_row_kernel_isas();
  if (std::count(runnable.begin(), runnable.end(), RowKernelIsa::kAvx512) == 0) {
    GTEST_SKIP() << "this CPU has no AVX-512: one variant to compare";
  }
  const RowKernelIsa before = row_kernel_isa();
  std::mt19937_64 rng(13);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(29), int64_t(512), int64_t(4099)}) {
    Rows rows = random_rows(rng, n, 3.0, 0.2);
    std::vector<float> ref = as_float(rows.ref), cand = as_float(rows.cand);
    auto all = [&] {
      std::vector<double> exps(static_cast<size_t>(n));
      std::vector<double> out = {js_row(ref.data(), 1.5, cand.data(), 1.25, n), kl_row(ref.data(), 1.5, cand.data(), 1.25, n),
                                 row_max(cand.data(), n), sum_exp_row(cand.data(), 4.0, n, exps.data())};
      out.insert(out.end(), exps.begin(), exps.end());
      return out;
    };
    use_row_kernel_isa(RowKernelIsa::kAvx512);
    std::vector<double> wide = all();
    use_row_kernel_isa(RowKernelIsa::kAvx2);
    std::vector<double> narrow = all();
    EXPECT_EQ(wide, narrow) << "n " << n;
  }
  use_row_kernel_isa(before);
}

TEST(RowKernelDispatch, TheBestVariantByDefaultAndOnlyOnesThisCpuRuns) {
  std::vector<RowKernelIsa> runnable = supported_row_kernel_isas();
  ASSERT_FALSE(runnable.empty());
  EXPECT_EQ(runnable.back(), RowKernelIsa::kBaseline) << "every CPU runs the baseline";
  if (std::getenv("CDMOE_ROW_KERNELS") == nullptr) {
    EXPECT_EQ(row_kernel_isa(), runnable.front());
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(std::count(runnable.begin(), runnable.end(), RowKernelIsa::kAvx2), __builtin_cpu_supports("x86-64-v3") ? 1 : 0);
  if (!__builtin_cpu_supports("x86-64-v4")) {
    EXPECT_THROW(use_row_kernel_isa(RowKernelIsa::kAvx512), std::invalid_argument);
  }
#endif
}

}  // namespace
}  // namespace cdmoe::eval::kernels
