#pragma once
// Vectorised row kernels for the divergences (the hot loop of a search candidate): sums over one
// row of log-probabilities given as logits minus a shift (their log-sum-exp), in float64.
//
// Contract: plain pointers, no allocation, no threads (callers split rows across threads); every
// function reads n values from each pointer. Results are float64 sums whose order differs from
// a scalar loop's (eight lanes, then the lanes): they agree with std::exp / std::log1p loops to
// ~1e-14 relative, which tests/eval/row_kernels_test.cc checks. The exponential and log1p are
// our own polynomials (no libm call, so the compiler vectorises them); on x86-64 each function
// is compiled for AVX-512, AVX2 and the baseline, the CPU choosing at load time.
#include <cstdint>

namespace cdmoe::eval::kernels {

// Σ_c 0.5·[p (lp − lm) + q (lq − lm)] with lp = ref[c] − ref_shift, lq = cand[c] − cand_shift,
// p = e^lp, q = e^lq, m = (p + q)/2: the row's Jensen-Shannon divergence (nats).
double js_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n);
double js_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n);
double js_row(const double* ref, double ref_shift, const float* cand, double cand_shift, int64_t n);

// Σ_c p (lp − lq), as above: the row's KL(p ‖ q).
double kl_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n);
double kl_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n);

// max_c row[c] (−inf for n = 0), and Σ_c e^(row[c] − top) for top ≥ every row[c].
double row_max(const float* row, int64_t n);
double row_max(const double* row, int64_t n);
double sum_exp_row(const float* row, double top, int64_t n);
double sum_exp_row(const double* row, double top, int64_t n);

}  // namespace cdmoe::eval::kernels
