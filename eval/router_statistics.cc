#include "eval/router_statistics.h"

#include <algorithm>
#include <numeric>

#include <ATen/ATen.h>

#include "core/plan.h"
#include "eval/text_data.h"

namespace cdmoe::eval {

void measure_router_statistics(model::MoeModel& model, const std::vector<std::vector<int64_t>>& sequences,
                               int64_t max_batch_tokens) {
  std::vector<size_t> order(sequences.size());
  std::iota(order.begin(), order.end(), size_t(0));
  // Longest first, so each batch pads to its first sequence and little padding is computed.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sequences[a].size() > sequences[b].size(); });
  at::NoGradGuard no_grad;
  model.set_router_stats(model::RouterStats());
  model.collect_router_stats(true);
  const int num_layers = int(model.shape().num_layers);
  for (size_t first = 0; first < order.size();) {
    const int64_t longest = int64_t(sequences[order[first]].size());
    size_t end = first + 1;
    while (end < order.size() && int64_t(end - first + 1) * longest <= max_batch_tokens) ++end;
    std::vector<std::vector<int64_t>> batch;
    for (size_t i = first; i < end; ++i) batch.push_back(sequences[order[i]]);
    auto [ids, mask] = pad_batch(batch);
    ids = ids.to(model.device());
    mask = mask.to(model.device());
    model.run_layers(model.embed(ids), mask, 0, num_layers, Plan());
    first = end;
  }
  model.collect_router_stats(false);
}

}  // namespace cdmoe::eval
