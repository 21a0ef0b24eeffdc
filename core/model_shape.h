// ModelShape: the torch-free facts of a Hugging Face MoE checkpoint that search and the
// parameter count need (layers, which are MoE, expert sizes). A plain value: it is read from
// config.json by the model family's reader (model/family.h), and search/, db/ and the
// coordinator receive it ready-made.
#pragma once

#include <cstdint>
#include <string>
#include <vector>


namespace cdmoe {

enum class LayerKind { kDense, kMoe };

// Where a family RMS-normalises queries and keys before RoPE (each with its own weight).
enum class QkNorm {
  kNone,
  kPerHead,        // Qwen3-MoE: over each head's d values, weights [d]
  kWholeProjection,  // OLMoE: over all H·d (keys: KV·d) values of the projection
};

// DeepSeek-V2/V3's multi-head latent attention (MLA): queries through an optional low-rank
// q_a/q_b pair, keys and values from one shared latent (kv_a_proj_with_mqa, kv_b_proj), RoPE on
// a qk_rope_head_dim part only.
struct LatentAttention {
  int64_t q_lora_rank = 0;  // 0: a plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool rope_interleave = true;  // the rope part's pairs interleaved (transformers' rope_interleave)
};

enum class RouterKind {
  kSoftmax,        // softmax over the experts, top-k (deepseek, deepseek_v2 greedy, qwen*, mixtral, olmoe)
  kSoftmaxGroups,  // DeepSeek-V2's group_limited_greedy: softmax, the top topk_group of n_group
                   // groups (by their largest probability), top-k in them
  kSigmoidGroups,  // DeepSeek-V3: sigmoid scores, + e_score_correction_bias for the choice only,
                   // the top topk_group of n_group groups (by the sum of their top-2), top-k in them
};

struct ModelShape {
  std::string model_type;  // a registered family's config.json model_type (model/family.cc)
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // config.json head_dim where the family reads it, else hidden / heads
  int64_t rotary_dim = 0;  // RoPE rotates each head's first rotary_dim dims (GLM-4.5's partial
                           // rotary); 0: all of head_dim
  int64_t max_position_embeddings = 0;
  int64_t dense_intermediate_size = 0;   // SwiGLU inner size of the dense (non-MoE) layers
  int64_t expert_intermediate_size = 0;  // inner size of one routed expert
  int64_t shared_intermediate_size = 0;  // inner size of all shared experts as one MLP; 0 = none
  int64_t num_routed_experts = 0;
  int64_t experts_per_token = 0;  // router top-k
  bool norm_topk_prob = false;
  bool tie_word_embeddings = false;
  bool attention_qkv_bias = false;
  bool attention_output_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
  double clip_qkv = 0;  // OLMoE: q, k, v clamped to [-clip_qkv, clip_qkv] after the norms; 0 = none
  bool latent_attention = false;  // MLA (then head_dim is the rope part's size)
  LatentAttention latent;
  RouterKind router = RouterKind::kSoftmax;
  int64_t n_group = 1, topk_group = 1;  // kSoftmaxGroups, kSigmoidGroups
  double routed_scaling_factor = 1;     // the routed experts' weights are multiplied by it
  int64_t ignored_trailing_layers = 0;  // layers past num_layers whose tensors a checkpoint may hold
                                        // and the model ignores (DeepSeek-V3's multi-token prediction)
  bool shared_expert_gate = false;  // qwen2_moe: shared expert scaled by sigmoid(Linear(D, 1))
  std::string torch_dtype;          // dtype the checkpoint declares (informational)
  std::vector<LayerKind> layer_kinds;  // one per decoder layer

  // Widths of one token's attention: all heads' query-key dot products and values.
  int64_t query_key_width() const;
  int64_t rope_dim() const { return rotary_dim > 0 ? rotary_dim : head_dim; }  // what RoPE rotates
  int64_t value_width() const;
  bool is_moe_layer(int64_t layer) const;
  std::vector<int> moe_layers() const;  // ascending decoder-layer indices
};

}  // namespace cdmoe
