// The paper's speed protocol: prefill of one T-token sequence at batch 1 (T = 2,000), the
// original model against one with a third of its MoE layers condensed to shared + k experts,
// timed A B A B with the device synchronised around every forward (the reference's timer does
// not synchronise the GPU); and the throughput of one MoE block (its forward minus its
// attention, measured with the block dropped) and of one condensed block, in TFLOP/s.
// Defaults are DeepSeekMoE-16B's widths (hidden 2048, 64 experts of 1408, 2 shared, top-6) on
// 1 dense + 6 MoE layers with random bf16 weights. One JSON line on stdout.
//   prefill_bench [--dir DIR] [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16]
//                 [--tokens 2000] [--hidden 2048] [--heads 16] [--moe-layers 6] [--experts 64]
//                 [--expert-inner 1408] [--shared 2] [--top-k 6] [--vocab 8192] [--repeats 10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "model/device.h"
#include "model/moe_model.h"
#include "model/synthetic_checkpoint.h"

using namespace cdmoe;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> o = {{"--dir", std::filesystem::temp_directory_path().string() + "/cdmoe-prefill"},
                                          {"--device", "auto"}, {"--dtype", "auto"}, {"--tokens", "2000"},
                                          {"--hidden", "2048"}, {"--heads", "16"}, {"--moe-layers", "6"},
                                          {"--experts", "64"}, {"--expert-inner", "1408"}, {"--shared", "2"},
                                          {"--top-k", "6"}, {"--vocab", "8192"}, {"--repeats", "10"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!o.count(argv[i])) {
      std::fprintf(stderr, "prefill_bench: unknown option %s\n", argv[i]);
      return 2;
    }
    o[argv[i]] = argv[i + 1];
  }
  auto number = [&](const char* key) { return std::atoll(o[key].c_str()); };
  const int64_t T = number("--tokens"), D = number("--hidden"), E = number("--experts"), I = number("--expert-inner");
  const int64_t shared = number("--shared"), k = number("--top-k"), moe_layers = number("--moe-layers");
  const int repeats = int(std::max<int64_t>(1, number("--repeats")));
  const std::string dir = o["--dir"];
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    model::SyntheticShape shape;
    shape.hidden = D, shape.heads = number("--heads"), shape.layers = 1 + moe_layers, shape.experts = E;
    shape.expert_inner = I, shape.shared = shared, shape.top_k = k, shape.vocab = number("--vocab");
    shape.dense_inner = 4 * D, shape.max_positions = std::max<int64_t>(4096, T), shape.bf16 = true;
    model::write_synthetic_checkpoint(dir, shape);
  }
  const std::string device = model::device_for_this_process(o["--device"], 0);
  const std::string dtype = model::compute_dtype_for(o["--dtype"], device);
  auto m = model::MoeModel::load(dir, at::Device(device), model::compute_dtype_named(dtype));
  const bool cuda = m->device().is_cuda();
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize(m->device().index());
  };
  auto timed = [&](const std::function<void()>& work) {
    sync();
    auto start = std::chrono::steady_clock::now();
    work();
    sync();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // A third of the MoE layers (the paper: 9 of 27) condensed to shared + k experts.
  std::vector<int> moe = m->shape().moe_layers();
  Plan condensed;
  std::vector<int> experts;
  std::vector<double> weights;
  for (int e = 0; e < int(k); ++e) experts.push_back(e), weights.push_back(1.0 / double(k));
  for (size_t i = 0; i < moe.size() / 3; ++i) condensed.set_layer(moe[i], LayerPlan{LayerOp::kCondense, experts, weights, {}});

  at::Tensor ids = at::randint(m->shape().vocab_size, {1, T}, at::kLong);
  for (int warm = 0; warm < 2; ++warm) {  // kernels chosen, the condensed layers materialised
    timed([&] { m->logits(ids, at::Tensor(), Plan()); });
    timed([&] { m->logits(ids, at::Tensor(), condensed); });
  }
  std::vector<double> original, candidate;
  for (int r = 0; r < repeats; ++r) {  // A B A B: drifts hit both alike
    original.push_back(timed([&] { m->logits(ids, at::Tensor(), Plan()); }));
    candidate.push_back(timed([&] { m->logits(ids, at::Tensor(), condensed); }));
  }

  // One MoE block alone: the layer's forward minus its attention (the same layer, block dropped).
  const int layer = moe.front();
  at::Tensor h = m->run_layers(m->embed(ids), at::Tensor(), 0, layer, Plan());
  Plan dropped, fused;
  dropped.set_layer(layer, LayerPlan{LayerOp::kDrop, {}, {}, {}});
  fused.set_layer(layer, LayerPlan{LayerOp::kCondense, experts, weights, {}});
  std::vector<double> full_layer, attention_only, fused_layer;
  for (int r = 0; r < repeats + 2; ++r) {
    full_layer.push_back(timed([&] { m->run_layers(h, at::Tensor(), layer, layer + 1, Plan()); }));
    attention_only.push_back(timed([&] { m->run_layers(h, at::Tensor(), layer, layer + 1, dropped); }));
    fused_layer.push_back(timed([&] { m->run_layers(h, at::Tensor(), layer, layer + 1, fused); }));
  }
  const double shared_inner = double(m->shape().shared_intermediate_size);
  const double moe_flops = 2.0 * double(T) * (double(k) * 3 * double(D) * double(I) + 3 * double(D) * shared_inner + double(E) * double(D));
  const double fused_flops = 2.0 * double(T) * 3 * double(D) * (shared_inner + double(k) * double(I));
  const double moe_s = median(full_layer) - median(attention_only), fused_s = median(fused_layer) - median(attention_only);
  std::string device_name = device;
  std::printf("%s\n", nlohmann::json{{"bench", "prefill"}, {"device", device_name}, {"dtype", dtype}, {"tokens", T},
                                     {"hidden", D}, {"experts", E}, {"expert_inner", I}, {"top_k", k},
                                     {"moe_layers", moe.size()}, {"condensed_layers", condensed.layers().size()},
                                     {"original_s", median(original)}, {"condensed_s", median(candidate)},
                                     {"speedup", median(original) / median(candidate)},
                                     {"moe_block_s", moe_s}, {"moe_block_tflops", moe_flops / moe_s / 1e12},
                                     {"condensed_block_s", fused_s}, {"condensed_block_tflops", fused_flops / fused_s / 1e12},
                                     {"attention_s", median(attention_only)}}
                          .dump().c_str());
  return 0;
}
