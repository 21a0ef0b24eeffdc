// Helpers the families' config.json readers share: positive sizes, and the keys every
// decoder-only family spells the same way. Errors name `where` and the key.
#pragma once

#include <cstdint>
#include <string>

#include "core/json_fields.h"
#include "core/model_shape.h"

namespace cdmoe::model {

int64_t require_positive(const Json& config, const std::string& key, const std::string& where);
int64_t positive_or(const Json& config, const std::string& key, int64_t fallback, const std::string& where);
int64_t non_negative_or(const Json& config, const std::string& key, int64_t fallback, const std::string& where);
// num_hidden_layers, hidden_size, vocab_size, heads, torch_dtype, tie_word_embeddings; head_dim
// = hidden_size / num_attention_heads, or config.json's head_dim (when present and not null)
// for families whose transformers class reads it (`explicit_head_dim`).
void read_common_shape(const Json& config, const std::string& where, ModelShape& shape, bool explicit_head_dim = false);
// Qwen's dense-or-MoE rule: MoE unless listed in mlp_only_layers, every decoder_sparse_step-th
// layer (1-based), when there are routed experts. Fills shape.layer_kinds.
void read_qwen_layer_kinds(const Json& config, const std::string& where, ModelShape& shape);
// DeepSeek's and GLM's rule: the first `first_dense` layers dense, then MoE every `every`-th
// layer (layer % every == 0). Fills shape.layer_kinds.
void set_dense_then_moe_layers(int64_t first_dense, int64_t every, ModelShape& shape);
// Sliding-window attention changes the mask past the window; no family here implements it.
void refuse_sliding_window(const Json& config, const std::string& enabled_key, const std::string& where);
// n_group and topk_group (their config-class defaults given): n_group divides the routed
// experts into groups of at least `min_group_size`, topk_group ≤ n_group.
void read_expert_groups(const Json& config, const std::string& where, int64_t default_n_group,
                        int64_t default_topk_group, int64_t min_group_size, ModelShape& shape);
// routed_scaling_factor in (0, 1000].
void read_routed_scaling_factor(const Json& config, const std::string& where, double fallback, ModelShape& shape);
// num_experts_per_tok must not exceed the routed experts.
void check_top_k(const ModelShape& shape, const std::string& where);

}  // namespace cdmoe::model
