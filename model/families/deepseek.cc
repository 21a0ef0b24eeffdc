// DeepSeekMoE v1 (modeling_deepseek.py): first_k_dense_replace dense layers, then MoE every
// moe_layer_freq; n_shared_experts shared experts as one ungated MLP; softmax router with
// top-k normalisation (when norm_topk_prob) over sum + 1e-20.
#include "model/families/families.h"

namespace cdmoe::model {

const FamilyTraits kDeepseekTraits{"deepseek", "shared_experts", /*shared_expert_gate=*/false, 1e-20};

}  // namespace cdmoe::model
