// Router statistics (model::RouterStats: per expert, tokens routed and mean gate weight w̄) from
// forwards of the original model over given token sequences. The worker measures them on the
// calibration sequences as the layer cache sees them (truncated to --seq-len), or with
// --routing-tokens full on each calibration document whole (up to max_position_embeddings), as
// the CD-MoE reference measures its dynamic_weight.json. Runs on the model's device, without
// autograd; the statistics replace the model's (MoeModel::set_router_stats semantics).
#pragma once

#include <cstdint>
#include <vector>

#include "model/moe_model.h"

namespace cdmoe::eval {

// Forwards `sequences` through every decoder layer of `model` (no plan, no LM head) in batches
// of at most `max_batch_tokens` padded tokens (one sequence at least), longest first, collecting
// router statistics over the valid tokens. Padding never counts; the batching does not change
// which tokens are counted, only the summation order.
void measure_router_statistics(model::MoeModel& model, const std::vector<std::vector<int64_t>>& sequences,
                               int64_t max_batch_tokens);

}  // namespace cdmoe::eval
