// The families with latent attention and the newer routers against the GEMM peak, and what an
// FP8 checkpoint costs to load. One synthetic checkpoint per family with DeepSeekMoE's
// proportions scaled down as model_forward_bench's (hidden 1024, 16 heads, 64 experts of 352,
// top-6, 2 shared, vocabulary 8192), 4 layers (layer 0 dense, inner 2816); MLA with latent 256,
// rope 32, nope and v 64 (V3: q LoRA 512). batch x seq = 2 x 512. For each of deepseek (softmax
// router, standard attention: the baseline), deepseek_v2 (MLA, group-limited greedy softmax)
// and deepseek_v3 (MLA, sigmoid group top-k): forward FLOPs actually computed / median time,
// against this machine's fp32 GEMM in the same run. Then deepseek_v3 with F8_E4M3 projections
// in 128 x 128 blocks beside its BF16 twin: file bytes, load time and peak RSS increase.
//   family_forward_bench [--threads N] [--dir DIR] [--repeats R]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/model_shape.h"
#include "core/param_count.h"
#include "model/moe_model.h"
#include "model/synthetic_checkpoint.h"
#include "bench/bench_args.h"
#include "bench/median_time.h"

using namespace cdmoe;
using bench::median_seconds;
using bench::status_kib;

namespace {

constexpr int64_t D = 1024, H = 16, L = 4, E = 64, I = 352, SHARED = 2, TOP = 6, V = 8192, DENSE = 2816;
constexpr int64_t LATENT = 256, ROPE = 32, B = 2, T = 512;

model::SyntheticShape shape_of(const std::string& family, bool fp8) {
  model::SyntheticShape s;
  s.family = family;
  s.hidden = D; s.heads = H; s.layers = L; s.experts = E; s.expert_inner = I; s.shared = SHARED; s.top_k = TOP;
  s.vocab = V; s.dense_inner = DENSE; s.kv_lora_rank = LATENT; s.qk_rope_head_dim = ROPE; s.fp8 = fp8;
  return s;
}

// Forward FLOPs per token as implemented (full T x T scores), from the loaded model's shape.
double flops_per_token(const ModelShape& s) {
  double attention;
  const double h = double(s.num_attention_heads);
  if (s.latent_attention) {
    const LatentAttention& a = s.latent;
    const double qk = double(a.qk_nope_head_dim + a.qk_rope_head_dim);
    attention = a.q_lora_rank ? 2.0 * D * a.q_lora_rank + 2.0 * a.q_lora_rank * h * qk : 2.0 * D * h * qk;
    attention += 2.0 * D * (a.kv_lora_rank + a.qk_rope_head_dim) + 2.0 * a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim);
    attention += 2.0 * h * a.v_head_dim * D + 2.0 * T * h * qk + 2.0 * T * h * a.v_head_dim;
  } else {
    attention = 2.0 * 4 * D * D + 2.0 * 2 * T * D;
  }
  double total = L * attention + 2.0 * 3 * D * DENSE + 2.0 * D * V;
  total += (L - 1) * (2.0 * D * E + 2.0 * 3 * D * I * (TOP + SHARED));
  return total;
}

int64_t directory_bytes(const std::string& dir) {
  int64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) bytes += int64_t(entry.file_size());
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::BenchArgs args = bench::parse_bench_args(argc, argv, "cdmoe-family-bench");
  const int threads = args.threads, repeats = args.repeats;
  const std::string& dir = args.dir;
  at::set_num_threads(threads);
  const std::vector<std::pair<std::string, bool>> checkpoints = {
      {"deepseek", false}, {"deepseek_v2", false}, {"deepseek_v3", false}, {"deepseek_v3", true}};
  auto path = [&](const std::pair<std::string, bool>& c) { return dir + "/" + c.first + (c.second ? "_fp8" : ""); };
  bool wrote = false;
  for (const auto& c : checkpoints) {
    if (std::filesystem::exists(path(c) + "/model.safetensors")) continue;
    model::write_synthetic_checkpoint(path(c), shape_of(c.first, c.second));
    wrote = true;
  }
  if (wrote) execv("/proc/self/exe", argv);  // afresh, so generation does not count in the loads' RSS

  at::Tensor a = at::randn({B * T, D}), w = at::randn({D, D});
  at::matmul(a, w);
  const double gemm_gflops = 2.0 * B * T * D * D / median_seconds(5, [&] { at::matmul(a, w); }) / 1e9;

  for (const auto& c : checkpoints) {
    std::ofstream("/proc/self/clear_refs") << "5";  // reset the RSS high-water mark
    const long rss_before = status_kib("VmRSS:");
    std::unique_ptr<model::MoeModel> model;
    const double load_s = median_seconds(1, [&] { model = model::MoeModel::load(path(c)); });
    const long peak = status_kib("VmHWM:");
    const int64_t weight_bytes = count_parameters(model->shape(), Plan()).total() * 4;
    // One JSON line (printf: nlohmann's string assignment trips GCC 12's -Warray-bounds here).
    std::printf("{\"bench\":\"family_forward\",\"family\":\"%s\",\"fp8_file\":%s,\"file_bytes\":%lld,\"load_s\":%.3f,"
                "\"weight_bytes_fp32\":%lld,\"peak_rss_increase_over_weights\":%.3f",
                c.first.c_str(), c.second ? "true" : "false", (long long)directory_bytes(path(c)), load_s,
                (long long)weight_bytes, double(peak - rss_before) * 1024 / double(weight_bytes));
    if (!c.second) {  // the forward of the FP8 twin is the BF16 one's (the same compute dtype)
      at::manual_seed(0);
      at::Tensor ids = at::randint(V, {B, T}, at::kLong);
      model->logits(ids, at::Tensor(), Plan());  // warm-up
      const double forward_s = median_seconds(repeats, [&] { model->logits(ids, at::Tensor(), Plan()); });
      const double gflops = flops_per_token(model->shape()) * B * T / forward_s / 1e9;
      std::printf(",\"forward_s\":%.3f,\"forward_gflops\":%.1f,\"gemm_gflops\":%.1f,\"fraction_of_gemm\":%.3f,"
                  "\"threads\":%d,\"repeats\":%d",
                  forward_s, gflops, gemm_gflops, gflops / gemm_gflops, threads, repeats);
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  return 0;
}
