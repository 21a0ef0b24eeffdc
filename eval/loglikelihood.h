// Log-likelihoods of continuations given contexts, as lm-evaluation-harness computes them: one
// forward over (context + continuation)[:-1]; the continuation tokens' log-probabilities
// summed; greedy when each continuation token is the argmax. Requests are batched with right
// padding (positions 0..T-1 as unpadded, so padding changes nothing). A request longer than
// the model's max_position_embeddings is refused (not truncated).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/plan.h"
#include "model/moe_model.h"

namespace cdmoe::eval {

struct ContinuationRequest {
  std::vector<int64_t> context;       // at least one token
  std::vector<int64_t> continuation;  // at least one token
};

struct ContinuationScore {
  double loglikelihood = 0;
  bool greedy = false;
};

std::vector<ContinuationScore> continuation_loglikelihoods(const model::MoeModel& model, const Plan& plan,
                                                           const std::vector<ContinuationRequest>& requests,
                                                           int64_t batch_size = 8,
                                                           const std::function<void(int64_t done)>& on_progress = {});

}  // namespace cdmoe::eval
