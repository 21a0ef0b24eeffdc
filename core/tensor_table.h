// The tensor table: every tensor of a model, by role and shape, derived once from its
// ModelShape and a plan. It is the one place a tensor's shape is written. The parameter count
// (core/param_count.h) and the cost model (search/budget.h) sum it; model/ names each role by
// the family's weight-name table (model/weight_names.h) and walks it to check a checkpoint's
// header, load, materialise and export. A new family adds names, never shapes: the roles and
// shapes follow from the attention and router kinds its config reader chose.
// Torch-free and names-free; a plain value.
//
// Order (the order of a checkpoint's tensors that cdmoe-synth writes and load reads): the
// embedding, the final norm, the head (absent when tied), then per decoder layer: input norm,
// attention (attention_tensors' order), post-attention norm, then the feed-forward: a dense
// MLP (a dense layer, or a condensed layer materialised as one), or the MoE block: router,
// router bias, routed experts, shared MLP, shared-expert gate.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/plan.h"

namespace cdmoe {

struct ModelShape;

enum class TensorRole {
  kEmbedding,  // [V, D], also the head when tie_word_embeddings
  kFinalNorm,  // [D]
  kLmHead,     // [V, D]
  kInputNorm,  // [D]
  kPostNorm,   // [D]
  // Standard attention (MHA/GQA): projections, biases, q/k norms (ModelShape::qk_norm).
  kQ, kK, kV, kO, kQBias, kKBias, kVBias, kOBias, kQNorm, kKNorm,
  // Latent attention (MLA): kQ when there is no q LoRA, kO and kOBias as above.
  kQA, kQABias, kQANorm, kQB, kKvA, kKvABias, kKvANorm, kKvB,
  kMlpGate, kMlpUp, kMlpDown,  // [I, D], [I, D], [D, I]: a dense MLP
  kRouter,                     // [E, D]
  kRouterBias,                 // [E]: RouterKind::kSigmoidGroups' e_score_correction_bias
  kExpertGate, kExpertUp, kExpertDown,  // one routed expert's [I, D], [I, D], [D, I] (per_expert)
  kFusedExpertGateUp,          // [E, 2I, D]: gate rows then up rows (transformers 5)
  kFusedExpertDown,            // [E, D, I]
  kSharedGate, kSharedUp, kSharedDown,  // the shared experts as one MLP
  kSharedExpertGate,           // [1, D]: qwen2_moe's sigmoid gate on the shared expert
};

// How a checkpoint stores an MoE layer's routed experts. A layer that a plan changes (prune)
// is always per expert: that is how export writes it.
enum class ExpertLayout { kPerExpert, kFused };

struct TensorEntry {
  TensorRole role;
  int layer = -1;              // -1: embedding, final norm, head
  std::vector<int64_t> shape;
  int64_t per_expert = 0;      // > 0: one such tensor for each of that many routed experts
  int64_t numel() const;       // all of them
};

int64_t shape_numel(const std::vector<int64_t>& shape);  // the elements of one tensor of that shape

bool is_attention(TensorRole role);
bool is_routed_expert(TensorRole role);  // per-expert or fused routed-expert weights

// One decoder layer's attention tensors (which projections, biases and norms the shape has).
std::vector<TensorEntry> attention_tensors(const ModelShape& shape, int layer);

// One decoder layer's tensors with `op` applied (nullptr: the original layer). A condensed layer
// is one dense MLP of the shared size + k expert sizes; a pruned one keeps the experts listed
// (renumbered 0..r-1); drop keeps the attention; drop_block keeps nothing.
std::vector<TensorEntry> layer_tensors(const ModelShape& shape, int layer, const LayerPlan* op, ExpertLayout layout);

// Every tensor of the model with the plan applied (it must be valid for the shape).
std::vector<TensorEntry> model_tensors(const ModelShape& shape, const Plan& plan,
                                       ExpertLayout layout = ExpertLayout::kPerExpert);

// Calls `visit` for every single tensor of `entries` in checkpoint order: a run of per-expert
// entries (gate, up, down) expands expert-major, as checkpoints store them (expert 0's gate, up,
// down, then expert 1's, ...); `expert` is -1 for the others.
void for_each_tensor(const std::vector<TensorEntry>& entries,
                     const std::function<void(const TensorEntry& entry, int64_t expert)>& visit);

}  // namespace cdmoe
