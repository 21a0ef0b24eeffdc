#pragma once
// Vectorised row kernels for the divergences (the hot loop of a search candidate): sums over one
// row of log-probabilities given as logits minus a shift (their log-sum-exp), in float64.
//
// Contract: plain pointers, no allocation, no threads (callers split rows across threads); every
// function reads n values from each pointer. Results are float64 sums whose order differs from
// a scalar loop's (eight lanes, then the lanes): they agree with std::exp / std::log1p loops to
// ~1e-14 relative, which tests/eval/row_kernels_test.cc checks. The exponential and log1p are
// our own polynomials (no libm call, so the compiler vectorises them); on x86-64 each function
// is compiled for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the baseline, and the first call
// picks the best the CPU runs, or the one the environment variable CDMOE_ROW_KERNELS names
// (avx512, avx2, baseline; for benchmarks and tests). The results of the variants may differ in
// the last bits (another order of the lanes' operations), never more than the tests allow.
#include <cstdint>
#include <vector>

namespace cdmoe::eval::kernels {

enum class RowKernelIsa { kAvx512, kAvx2, kBaseline };
const char* row_kernel_isa_name(RowKernelIsa isa);  // "avx512", "avx2", "baseline"
// The variants this CPU runs, best first (the baseline always).
std::vector<RowKernelIsa> supported_row_kernel_isas();
// The variant the kernels use now.
RowKernelIsa row_kernel_isa();
// Use `isa` from now on (std::invalid_argument when this CPU cannot run it). For tests and
// benchmarks: not to be called while another thread runs a kernel.
void use_row_kernel_isa(RowKernelIsa isa);

// Σ_c 0.5·[p (lp − lm) + q (lq − lm)] with lp = ref[c] − ref_shift, lq = cand[c] − cand_shift,
// p = e^lp, q = e^lq, m = (p + q)/2: the row's Jensen-Shannon divergence (nats).
double js_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n);
double js_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n);
// The same JS with both sides' probabilities at hand: log_p and p = e^log_p of the reference
// (prepared once), the candidate's log-probabilities cand − cand_shift with probabilities
// cand_exps[c] · cand_exp_scale (= e^(cand[c] − cand_shift): what sum_exp_row stored). One
// exponential per element fewer than the form above.
double js_row(const double* log_p, const double* p, const float* cand, double cand_shift, const double* cand_exps,
              double cand_exp_scale, int64_t n);
double js_row(const double* log_p, const double* p, const double* cand, double cand_shift, const double* cand_exps,
              double cand_exp_scale, int64_t n);

// Σ_c p (lp − lq), as above: the row's KL(p ‖ q).
double kl_row(const float* ref, double ref_shift, const float* cand, double cand_shift, int64_t n);
double kl_row(const double* ref, double ref_shift, const double* cand, double cand_shift, int64_t n);

// max_c row[c] (−inf for n = 0), and Σ_c e^(row[c] − top) for top ≥ every row[c], each term
// also written to exps[c] when exps (n values) is given.
double row_max(const float* row, int64_t n);
double row_max(const double* row, int64_t n);
double sum_exp_row(const float* row, double top, int64_t n, double* exps = nullptr);
double sum_exp_row(const double* row, double top, int64_t n, double* exps = nullptr);

}  // namespace cdmoe::eval::kernels
