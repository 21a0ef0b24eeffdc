#include "eval/loglikelihood.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "core/error.h"

namespace cdmoe::eval {

std::vector<ContinuationScore> continuation_loglikelihoods(const model::MoeModel& model, const Plan& plan,
                                                           const std::vector<ContinuationRequest>& requests,
                                                           int64_t batch_size,
                                                           const std::function<void(int64_t done)>& on_progress) {
  std::vector<ContinuationScore> scores(requests.size());
  for (size_t first = 0; first < requests.size(); first += size_t(batch_size)) {
    size_t last = std::min(requests.size(), first + size_t(batch_size));
    int64_t width = 0;
    for (size_t r = first; r < last; ++r) {
      const ContinuationRequest& request = requests[r];
      if (request.context.empty() || request.continuation.empty()) {
        throw_bad_input("request " + std::to_string(r) + ": context and continuation need at least one token each");
      }
      width = std::max<int64_t>(width, int64_t(request.context.size() + request.continuation.size()) - 1);
    }
    int64_t rows = int64_t(last - first);
    at::Tensor ids = at::zeros({rows, width}, at::kLong), mask = at::zeros({rows, width}, at::kLong);
    for (size_t r = first; r < last; ++r) {
      std::vector<int64_t> tokens = requests[r].context;
      tokens.insert(tokens.end(), requests[r].continuation.begin(), requests[r].continuation.end() - 1);
      ids[int64_t(r - first)].narrow(0, 0, int64_t(tokens.size())).copy_(at::tensor(tokens, at::kLong));
      mask[int64_t(r - first)].narrow(0, 0, int64_t(tokens.size())).fill_(1);
    }
    at::Tensor log_probs = at::log_softmax(model.logits(ids, mask, plan), -1);  // [rows, width, V]
    for (size_t r = first; r < last; ++r) {
      const ContinuationRequest& request = requests[r];
      int64_t start = int64_t(request.context.size()) - 1, count = int64_t(request.continuation.size());
      at::Tensor positions = log_probs[int64_t(r - first)].narrow(0, start, count);      // [count, V]
      at::Tensor targets = at::tensor(request.continuation, at::kLong).to(positions.device());
      scores[r].loglikelihood = positions.gather(1, targets.unsqueeze(1)).sum().item<double>();
      scores[r].greedy = at::equal(positions.argmax(1), targets);
    }
    if (on_progress) on_progress(int64_t(last));
  }
  return scores;
}

}  // namespace cdmoe::eval
