// The divergence row kernels of each instruction set this CPU runs (eval/row_kernels.h: AVX-512,
// AVX2, the baseline), timed on the same rows in one process: nanoseconds per element of a
// Jensen-Shannon row, a KL row, a row maximum and a row's sum of exponentials, for rows as wide
// as a hidden state (js-hidden) and as a vocabulary (js-logits). One thread, float32 rows; one
// JSON line per variant and width; and js-hidden's whole row (max, exponentials, the JS with the
// reference's probabilities prepared). So an AVX-512 machine measures the path AVX2-only CPUs take.
//   row_kernels_bench [--rows R] [--repeats N]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/median_time.h"
#include "eval/row_kernels.h"

using namespace cdmoe;
namespace kernels = cdmoe::eval::kernels;

int main(int argc, char** argv) {
  int64_t rows = 256;
  int repeats = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--rows") rows = std::atoll(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::atoi(argv[i + 1]);
  }
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (int64_t width : {int64_t(512), int64_t(32000)}) {
    const int64_t n = rows * (width == 512 ? 8 : 1);  // about the same work per width
    std::vector<float> ref(static_cast<size_t>(n * width)), cand(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = 3.0f * normal(rng), cand[i] = ref[i] + 0.1f * normal(rng);
    std::vector<double> lse_p(static_cast<size_t>(n)), lse_q(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      double top_p = kernels::row_max(&ref[size_t(r * width)], width), top_q = kernels::row_max(&cand[size_t(r * width)], width);
      lse_p[size_t(r)] = top_p + std::log(kernels::sum_exp_row(&ref[size_t(r * width)], top_p, width));
      lse_q[size_t(r)] = top_q + std::log(kernels::sum_exp_row(&cand[size_t(r * width)], top_q, width));
    }
    // The reference side as js-hidden prepares it once: log-probabilities and probabilities.
    std::vector<double> log_p(ref.size()), p(ref.size());
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < width; ++c) {
        const size_t at = size_t(r * width + c);
        log_p[at] = ref[at] - lse_p[size_t(r)], p[at] = std::exp(log_p[at]);
      }
    }
    const double elements = double(n * width);
    for (kernels::RowKernelIsa isa : kernels::supported_row_kernel_isas()) {
      kernels::use_row_kernel_isa(isa);
      double js = 0, kl = 0, sink = 0;
      auto per_element_ns = [&](const std::function<void()>& work) { return 1e9 * bench::median_seconds(repeats, work) / elements; };
      double js_ns = per_element_ns([&] {
        js = 0;
        for (int64_t r = 0; r < n; ++r) js += kernels::js_row(&ref[size_t(r * width)], lse_p[size_t(r)], &cand[size_t(r * width)], lse_q[size_t(r)], width);
      });
      double kl_ns = per_element_ns([&] {
        kl = 0;
        for (int64_t r = 0; r < n; ++r) kl += kernels::kl_row(&ref[size_t(r * width)], lse_p[size_t(r)], &cand[size_t(r * width)], lse_q[size_t(r)], width);
      });
      double max_ns = per_element_ns([&] {
        for (int64_t r = 0; r < n; ++r) sink += kernels::row_max(&cand[size_t(r * width)], width);
      });
      double sum_exp_ns = per_element_ns([&] {
        for (int64_t r = 0; r < n; ++r) sink += kernels::sum_exp_row(&cand[size_t(r * width)], lse_q[size_t(r)], width);
      });
      // js-hidden's whole row (eval/divergence.cc): the candidate's max, its exponentials kept,
      // and the JS with the reference's prepared log-probabilities and probabilities.
      std::vector<double> exps(static_cast<size_t>(width));
      double js_hidden = 0;
      double js_hidden_ns = per_element_ns([&] {
        js_hidden = 0;
        for (int64_t r = 0; r < n; ++r) {
          const float* row = &cand[size_t(r * width)];
          double top = kernels::row_max(row, width);
          double lse = top + std::log(kernels::sum_exp_row(row, top, width, exps.data()));
          const double* lp = &log_p[size_t(r * width)];
          js_hidden += kernels::js_row(lp, &p[size_t(r * width)], row, lse, exps.data(), std::exp(top - lse), width);
        }
      });
      std::printf("%s\n", nlohmann::json{{"bench", "row_kernels"}, {"isa", kernels::row_kernel_isa_name(isa)}, {"width", width},
                                         {"rows", n}, {"js_ns_per_element", js_ns}, {"kl_ns_per_element", kl_ns},
                                         {"max_ns_per_element", max_ns}, {"sum_exp_ns_per_element", sum_exp_ns},
                                         {"js_hidden_row_ns_per_element", js_hidden_ns}, {"js_hidden", js_hidden},
                                         {"js", js}, {"kl", kl}, {"sink", sink}}
                              .dump()
                              .c_str());
    }
  }
  return 0;
}
