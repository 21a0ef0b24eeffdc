// Log-likelihoods of continuations given contexts, as lm-evaluation-harness computes them: one
// forward over (context + continuation)[:-1]; the continuation tokens' log-probabilities
// summed; greedy when each continuation token is the argmax. Requests share forward rows: a row
// holds a context once, then the tokens (but the last) of each continuation of that context or
// of a prefix of it, each attending to its own context and to itself at the positions it would
// have alone (MoeModel's TokenLayout), so each value is the one its own forward would give;
// identical requests are scored once. Rows run longest first, batched with right padding. A request longer than the
// model's max_position_embeddings is refused here (task scoring cuts it first, as lm-eval does:
// eval/metrics.cc). The model may live on any device;
// the scores come back on the host.
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
