// Forward throughput of the MoE transformer on a synthetic checkpoint with DeepSeekMoE's
// proportions scaled down (hidden 1024, 64 experts of 352, top-6, 2 shared, 8 layers, layer 0
// dense), batch x seq = 4 x 512, against this machine's fp32 GEMM measured in the same run;
// peak RSS while loading vs the final weight bytes; speed-up and memory ratio of condensing
// half of the MoE layers to shared + 6 experts (timed A B A B so noise cancels).
//   model_forward_bench [--threads N] [--dir DIR] [--repeats R]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "core/model_shape.h"
#include "core/param_count.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/synthetic_checkpoint.h"
#include "bench/bench_args.h"

using namespace cdmoe;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t D = 1024, H = 16, L = 8, E = 64, I = 352, SHARED = 2, TOP = 6, V = 8192, DENSE = 2816;
constexpr int64_t B = 4, T = 512;

long status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  }
  return -1;
}

double seconds(const std::function<void()>& work) {
  auto start = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bench::BenchArgs args = bench::parse_bench_args(argc, argv, "cdmoe-forward-bench");
  const int threads = args.threads, repeats = args.repeats;
  const std::string& dir = args.dir;
  at::set_num_threads(threads);
  at::manual_seed(0);
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    model::SyntheticShape shape;
    shape.hidden = D; shape.heads = H; shape.layers = L; shape.experts = E; shape.expert_inner = I;
    shape.shared = SHARED; shape.top_k = TOP; shape.vocab = V; shape.dense_inner = DENSE;
    model::write_synthetic_checkpoint(dir, shape);
    execv("/proc/self/exe", argv);  // start afresh so generation does not count in the load's RSS
  }

  // Peak RSS while loading: reset the high-water mark, then load.
  std::ofstream("/proc/self/clear_refs") << "5";
  long rss_before = status_kib("VmRSS:");
  auto model = model::MoeModel::load(dir);
  long peak = status_kib("VmHWM:");
  int64_t weight_bytes = count_parameters(model->shape(), Plan()).total() * 4;
  std::printf("%s\n", nlohmann::json{{"bench", "model_load"}, {"weight_bytes_fp32", weight_bytes},
                                     {"peak_rss_increase_bytes", (peak - rss_before) * 1024},
                                     {"peak_over_weights", double(peak - rss_before) * 1024 / double(weight_bytes)},
                                     {"rss_before_bytes", rss_before * 1024}, {"rss_after_load_bytes", status_kib("VmRSS:") * 1024}}
                          .dump().c_str());

  // This machine's fp32 GEMM, same run: [B·T, D] x [D, D].
  at::Tensor a = at::randn({B * T, D}), w = at::randn({D, D});
  at::matmul(a, w);
  std::vector<double> gemm;
  for (int r = 0; r < 5; ++r) gemm.push_back(seconds([&] { at::matmul(a, w); }));
  double gemm_gflops = 2.0 * B * T * D * D / median(gemm) / 1e9;

  // Forward FLOPs actually computed (full T x T attention scores as implemented).
  double per_token = 0;
  per_token += L * (2.0 * 4 * D * D + 2.0 * 2 * T * D);                  // projections, QK^T and AV
  per_token += 2.0 * 3 * D * DENSE;                                       // dense layer 0
  per_token += (L - 1) * (2.0 * D * E + 2.0 * 3 * D * I * (TOP + SHARED));  // router, 6 routed + shared
  per_token += 2.0 * D * V;                                               // LM head
  double flops = per_token * B * T;

  at::Tensor ids = at::randint(V, {B, T}, at::kLong);
  Plan condensed;  // half the MoE layers (4 of 7) to shared + 6 experts
  for (int layer : {1, 3, 5, 7}) condensed.set_layer(layer, LayerPlan{LayerOp::kCondense, {0, 1, 2, 3, 4, 5}, {0.2, 0.2, 0.15, 0.15, 0.1, 0.1}, 1.0});
  model->logits(ids, at::Tensor(), Plan());       // warm-up, and builds the condensed cache below
  model->logits(ids, at::Tensor(), condensed);
  std::vector<double> original_s, condensed_s;
  for (int r = 0; r < repeats; ++r) {
    original_s.push_back(seconds([&] { model->logits(ids, at::Tensor(), Plan()); }));
    condensed_s.push_back(seconds([&] { model->logits(ids, at::Tensor(), condensed); }));
  }
  double forward = median(original_s);
  int64_t materialised_original = 0, materialised_condensed = 0;
  for (auto& [n, t] : model->materialise(Plan())) materialised_original += t.numel();
  for (auto& [n, t] : model->materialise(condensed)) materialised_condensed += t.numel();
  std::printf("%s\n", nlohmann::json{{"bench", "model_forward"}, {"threads", threads}, {"batch", B}, {"seq", T},
                                     {"forward_s", forward}, {"forward_gflops", flops / forward / 1e9},
                                     {"gemm_gflops", gemm_gflops}, {"fraction_of_gemm", flops / forward / 1e9 / gemm_gflops},
                                     {"tokens_per_s", B * T / forward}, {"repeats", repeats}}
                          .dump().c_str());
  std::printf("%s\n", nlohmann::json{{"bench", "condense_half"}, {"condensed_layers", 4}, {"moe_layers", L - 1},
                                     {"original_s", forward}, {"condensed_s", median(condensed_s)},
                                     {"speedup", forward / median(condensed_s)},
                                     {"memory_ratio_analytic", parameter_ratio(model->shape(), condensed)},
                                     {"memory_ratio_materialised", double(materialised_condensed) / double(materialised_original)}}
                          .dump().c_str());
  return 0;
}
