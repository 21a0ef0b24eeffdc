// A model under a plan re-expressed as a checkpoint of a stock transformers class, which
// transformers and vLLM load with no custom code (cdmoe-export --format transformers):
//  - qwen2_moe and qwen3_moe sources stay their own class. Every layer with a dense MLP (the
//    source's dense layers and the condensed ones) is listed in mlp_only_layers with
//    decoder_sparse_step 1, all at one intermediate_size, the widest; narrower MLPs are
//    zero-padded, which is exact (silu(0)·0 = 0 and the padded down columns are 0). A
//    condensed qwen2_moe layer has its mean shared-expert gate folded in already (condense).
//  - deepseek (DeepSeekMoE v1, no stock class) becomes qwen2_moe: zero q/k/v biases, the shared
//    experts as the shared expert with a zero shared_expert_gate and its down projection doubled
//    (sigmoid(0) = 1/2, both exact in floating point), dense layers on mlp_only_layers.
//  - BlockDrop removes the layer (later layers renumbered, num_hidden_layers and every per-layer
//    field re-indexed); prune with the same number of experts in every MoE layer left sets
//    num_experts.
// What no stock config expresses (a drop of the MoE block that keeps attention, prune with
// unequal counts, and the families whose configs have no per-layer dense MLP: DeepSeek-V2/V3,
// Mixtral, OLMoE, GLM-4.5) is bad input in one line naming the layer and why, and pointing at
// --format cdmoe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/json_fields.h"
#include "core/plan.h"
#include "model/hf_export.h"

namespace cdmoe::model {

class MoeModel;

// The stock config.json for the model whose config.json is `source`, under `plan`: the
// source's fields, re-indexed and retyped as above (for deepseek, the qwen2_moe fields a
// Qwen2MoeConfig reads). Bad input as above when the plan is not expressible.
Json stock_config(const Json& source, const Plan& plan);

// Every tensor of the stock checkpoint of `config` (stock_config's), by the stock class's names
// in checkpoint order, each derived from one of the model's materialised tensors (plan
// applied) when computed: what the stock class creates for that config, nothing missing and
// nothing extra (checked on the layout, before any weight is read; a mismatch is a runtime
// error naming the tensor). Tensors live on the model's device.
std::vector<LazyTensor> stock_tensors(const MoeModel& model, const Plan& plan, const Json& config);

}  // namespace cdmoe::model
