// Cost of one search candidate with the layer cache vs the reference implementation's way (a
// full forward of the whole model per candidate), on an 8-layer synthetic model (64 experts):
// expert selection by the layer path and by the weighted sum of cached expert outputs; layer
// selection from the original's boundaries and from the incumbent's. One JSON line per kind.
//   layer_cache_bench [--threads N] [--dir DIR]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "apps/launch.h"
#include "model/synthetic_checkpoint.h"
#include "bench/median_time.h"
#include "eval/divergence.h"
#include "eval/row_kernels.h"
#include "eval/layer_cache.h"
#include "model/moe_model.h"

using namespace cdmoe;

using bench::median_seconds;

int main(int argc, char** argv) {
  int threads = 2;
  std::string dir = std::filesystem::temp_directory_path().string() + "/cdmoe-cache-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
  }
  keep_freed_memory_for_reuse();  // as the sweep's workers run (apps/launch.h)
  // Which code paths ran: the divergence row kernels (CDMOE_ROW_KERNELS picks another than the
  // CPU's best) and ATen's (ATEN_CPU_CAPABILITY), so an AVX-512 machine can time AVX2's.
  const char* kernels_used = eval::kernels::row_kernel_isa_name(eval::kernels::row_kernel_isa());
  const char* aten_capability = std::getenv("ATEN_CPU_CAPABILITY") ? std::getenv("ATEN_CPU_CAPABILITY") : "default";
  at::set_num_threads(threads);
  at::manual_seed(0);
  model::SyntheticShape shape;
  shape.hidden = 512; shape.heads = 8; shape.expert_inner = 176; shape.dense_inner = 1408;
  if (!std::filesystem::exists(dir + "/model.safetensors")) model::write_synthetic_checkpoint(dir, shape);
  auto model = model::MoeModel::load(dir);
  at::Tensor ids = at::randint(shape.vocab, {8, 256}, at::kLong), mask = at::ones({8, 256}, at::kLong);
  eval::LayerCache cache(*model, ids, mask, Plan(), int64_t(4) << 30);
  for (int layer = 0; layer <= shape.layers; ++layer) cache.boundary(layer);  // warm: what a worker holds

  int layer = 4;
  Plan expert_candidate = Plan::parse("{\"layers\":{\"4\":{\"op\":\"condense\",\"experts\":[7],\"weights\":[0.3]}}}", "p");
  Plan six_experts = Plan::parse("{\"layers\":{\"4\":{\"op\":\"condense\",\"experts\":[1,7,9,20,33,60],"
                                 "\"weights\":[0.1,0.3,0.1,0.1,0.1,0.1]}}}", "p");
  // The reference's way: a full forward per candidate, the layer's output taken on the way.
  at::Tensor original_output = cache.boundary(layer + 1);
  double full = median_seconds(3, [&] {
    at::Tensor captured = model->run_layers(model->embed(ids), mask, 0, layer + 1, expert_candidate);
    model->head(model->run_layers(captured, mask, layer + 1, shape.layers, expert_candidate));
    eval::js_hidden(original_output.reshape({-1, shape.hidden}), captured.reshape({-1, shape.hidden}), mask.flatten());
  });
  // The layer path (the cache's boundaries only: the expert outputs do not fit beside them), and
  // the weighted sum of the cached expert outputs, with the one-off cost of computing them.
  const int64_t boundary_bytes = int64_t(8 * 256 * shape.hidden * 4);
  eval::LayerCache layer_path(*model, ids, mask, Plan(), (shape.layers + 1) * boundary_bytes);
  for (int l = 0; l <= shape.layers; ++l) layer_path.boundary(l);
  double one_layer = median_seconds(5, [&] { eval::measure_objective(layer_path, "js-hidden", "layer", expert_candidate); });
  auto parts_start = std::chrono::steady_clock::now();
  eval::measure_objective(cache, "js-hidden", "layer", expert_candidate);  // computes the layer's expert outputs
  double parts_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - parts_start).count();
  double summed = median_seconds(9, [&] { eval::measure_objective(cache, "js-hidden", "layer", expert_candidate); });
  double summed_six = median_seconds(9, [&] { eval::measure_objective(cache, "js-hidden", "layer", six_experts); });
  // A whole greedy expert selection of one layer (k = 6 rounds over 64 experts: 369 candidates)
  // costs parts_s once plus the candidates: per candidate, amortised.
  const int candidates = 64 + 63 + 62 + 61 + 60 + 59;
  double amortised = parts_s / candidates + (summed + summed_six) / 2;
  std::printf("%s\n", nlohmann::json{{"bench", "layer_cache"}, {"candidate", "expert_select (js-hidden, layer 4 of 8)"},
                                     {"row_kernels", kernels_used}, {"aten_cpu_capability", aten_capability},
                                     {"layers", shape.layers}, {"experts", shape.experts}, {"calib_tokens", 8 * 256},
                                     {"threads", threads}, {"full_forward_s", full}, {"layer_path_s", one_layer},
                                     {"expert_sum_s", summed}, {"expert_sum_six_experts_s", summed_six},
                                     {"expert_outputs_once_s", parts_s}, {"ratio", full / summed},
                                     {"ratio_vs_layer_path", one_layer / summed},
                                     {"ratio_amortised_k6", full / amortised}, {"layer_path_ratio", full / one_layer},
                                     {"expert_outputs_bytes", cache.stats().parts_bytes}}
                          .dump().c_str());
  Plan layer_candidate = Plan::parse("{\"layers\":{\"6\":{\"op\":\"condense\",\"experts\":[1,2,3,4,5,6],\"weights\":[0.1,0.1,0.1,0.1,0.1,0.1]}}}", "p");
  at::Tensor reference = model->final_norm(cache.boundary(shape.layers)).reshape({-1, shape.hidden});
  double full_model = median_seconds(3, [&] {
    at::Tensor h = model->run_layers(model->embed(ids), mask, 0, int(shape.layers), layer_candidate);
    eval::js_logits(reference, model->final_norm(h).reshape({-1, shape.hidden}), model->lm_head_weight(), mask.flatten());
  });
  // The cache's layers, but the reference side of the JS recomputed for every candidate.
  double cached_unprepared = median_seconds(3, [&] {
    at::Tensor h = cache.final_hidden(layer_candidate);
    eval::js_logits(reference, model->final_norm(h).reshape({-1, shape.hidden}), model->lm_head_weight(), mask.flatten());
  });
  eval::measure_objective(cache, "js-logits", "model", layer_candidate);  // prepares the reference once
  double cached_model = median_seconds(3, [&] { eval::measure_objective(cache, "js-logits", "model", layer_candidate); });
  // Layer selection's step 2: the candidate extends an incumbent that condensed layer 2. From
  // the original's boundary it runs layers 2..7; from the incumbent's, layers 6..7.
  Plan incumbent = Plan::parse("{\"layers\":{\"2\":{\"op\":\"condense\",\"experts\":[3],\"weights\":[0.2]}}}", "p");
  Plan step_two = layer_candidate;
  step_two.set_layer(2, incumbent.layers().at(2));
  double from_original = median_seconds(3, [&] { eval::measure_objective(cache, "js-logits", "model", step_two); });
  eval::measure_objective(cache, "js-logits", "model", step_two, 1.0, &incumbent);
  double from_incumbent = median_seconds(3, [&] {
    eval::measure_objective(cache, "js-logits", "model", step_two, 1.0, &incumbent);
  });
  // Where a model-scope candidate's time goes: its layers, and the vocabulary JS.
  at::Tensor step_hidden;
  double layers_only = median_seconds(3, [&] { step_hidden = cache.final_hidden(step_two, -1, &incumbent); });
  std::printf("%s\n", nlohmann::json{{"bench", "layer_cache"}, {"candidate", "layer_select (js-logits, layer 6 of 8)"},
                                     {"row_kernels", kernels_used}, {"aten_cpu_capability", aten_capability},
                                     {"layers", shape.layers}, {"calib_tokens", 8 * 256}, {"threads", threads},
                                     {"full_forward_s", full_model}, {"with_cache_reference_per_candidate_s", cached_unprepared},
                                     {"with_cache_s", cached_model}, {"ratio", full_model / cached_model},
                                     {"prepared_reference_gain", cached_unprepared / cached_model},
                                     {"step2_from_original_s", from_original}, {"step2_from_incumbent_s", from_incumbent},
                                     {"incumbent_gain", from_original / from_incumbent},
                                     {"step2_layers_s", layers_only}, {"step2_vocabulary_js_s", from_incumbent - layers_only},
                                     {"cache_bytes", cache.stats().bytes}}
                          .dump().c_str());
  return 0;
}
