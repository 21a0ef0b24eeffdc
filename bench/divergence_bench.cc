// Cost of one vocabulary divergence over calibration tokens (the hot spot of layer selection):
// js_logits with the reference recomputed, and against a prepared VocabularyReference with its
// log-probabilities kept or not; and the last case again with the tensor-operation kernel (what
// a CUDA model takes) on the CPU. Random float32 rows and LM head; one JSON line.
//   divergence_bench [--tokens N] [--vocab V] [--hidden D] [--threads T] [--repeats R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "bench/median_time.h"
#include "eval/divergence.h"

using namespace cdmoe;

using bench::median_seconds;

int main(int argc, char** argv) {
  int64_t tokens = 2048, vocab = 32000, hidden = 512;
  int threads = 2, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--tokens") tokens = std::atoll(argv[i + 1]);
    else if (flag == "--vocab") vocab = std::atoll(argv[i + 1]);
    else if (flag == "--hidden") hidden = std::atoll(argv[i + 1]);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(threads);
  at::manual_seed(0);
  at::Tensor x_ref = at::randn({tokens, hidden}), x_cand = x_ref + 0.05 * at::randn({tokens, hidden});
  at::Tensor w = at::randn({vocab, hidden}) / std::sqrt(double(hidden));
  at::Tensor valid = at::ones({tokens}, at::kBool);
  double value = 0;
  double one_shot = median_seconds(repeats, [&] { value = eval::js_logits(x_ref, x_cand, w, valid); });
  eval::VocabularyReference lse_only(x_ref, w, eval::kVocabularyChunk, 0);
  double prepared = median_seconds(repeats, [&] { eval::js_logits(lse_only, x_cand); });
  eval::VocabularyReference kept(x_ref, w, eval::kVocabularyChunk, int64_t(1) << 40);
  double prepared_kept = median_seconds(repeats, [&] { eval::js_logits(kept, x_cand); });
  eval::VocabularyReference kept_ops(x_ref, w, eval::kVocabularyChunk, int64_t(1) << 40, eval::VocabularyKernel::kTensorOps);
  double ops_value = 0;
  double prepared_kept_ops = median_seconds(repeats, [&] { ops_value = eval::js_logits(kept_ops, x_cand); });
  std::printf("%s\n", nlohmann::json{{"bench", "divergence"}, {"tokens", tokens}, {"vocab", vocab}, {"hidden", hidden},
                                     {"threads", threads}, {"js_logits", value}, {"one_shot_s", one_shot},
                                     {"prepared_lse_s", prepared}, {"prepared_kept_s", prepared_kept},
                                     {"kept_bytes", kept.kept_bytes()}, {"prepared_kept_tensor_ops_s", prepared_kept_ops},
                                     {"js_logits_tensor_ops", ops_value}}
                          .dump().c_str());
  return 0;
}
