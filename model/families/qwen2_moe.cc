// Qwen1.5-MoE / Qwen2-MoE (modeling_qwen2_moe.py): MoE every decoder_sparse_step except
// mlp_only_layers; one shared expert scaled per token by sigmoid(shared_expert_gate(x));
// softmax router, top-k normalised by its plain sum when norm_topk_prob; q/k/v biases.
#include "model/families/families.h"

namespace cdmoe::model {

const FamilyTraits kQwen2MoeTraits{"qwen2_moe", "shared_expert", /*shared_expert_gate=*/true, 0.0};

}  // namespace cdmoe::model
