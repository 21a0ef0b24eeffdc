#include "core/tensor_table.h"

#include <functional>
#include <numeric>

#include "core/model_shape.h"

namespace cdmoe {

int64_t shape_numel(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

int64_t TensorEntry::numel() const {
  const int64_t n = shape_numel(shape);
  return per_expert > 0 ? n * per_expert : n;
}

bool is_attention(TensorRole role) { return role >= TensorRole::kQ && role <= TensorRole::kKvB; }

bool is_routed_expert(TensorRole role) {
  return role >= TensorRole::kExpertGate && role <= TensorRole::kFusedExpertDown;
}

std::vector<TensorEntry> attention_tensors(const ModelShape& s, int layer) {
  using R = TensorRole;
  const int64_t D = s.hidden_size, H = s.num_attention_heads;
  std::vector<TensorEntry> out;
  auto add = [&](TensorRole role, std::vector<int64_t> shape) { out.push_back({role, layer, std::move(shape)}); };
  if (s.latent_attention) {
    const LatentAttention& a = s.latent;
    const int64_t kv_a = a.kv_lora_rank + a.qk_rope_head_dim;  // the latent and the shared rope key
    if (a.q_lora_rank) {
      add(R::kQA, {a.q_lora_rank, D});
      if (s.attention_output_bias) add(R::kQABias, {a.q_lora_rank});
      add(R::kQANorm, {a.q_lora_rank});
      add(R::kQB, {s.query_key_width(), a.q_lora_rank});
    } else {
      add(R::kQ, {s.query_key_width(), D});
    }
    add(R::kKvA, {kv_a, D});
    if (s.attention_output_bias) add(R::kKvABias, {kv_a});
    add(R::kKvANorm, {a.kv_lora_rank});
    add(R::kKvB, {H * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank});
    add(R::kO, {D, s.value_width()});
    if (s.attention_output_bias) add(R::kOBias, {D});
    return out;
  }
  const int64_t q = H * s.head_dim, kv = s.num_key_value_heads * s.head_dim;
  add(R::kQ, {q, D});
  add(R::kK, {kv, D});
  add(R::kV, {kv, D});
  add(R::kO, {D, q});
  if (s.attention_qkv_bias) {
    add(R::kQBias, {q});
    add(R::kKBias, {kv});
    add(R::kVBias, {kv});
  }
  if (s.attention_output_bias) add(R::kOBias, {D});
  if (s.qk_norm == QkNorm::kPerHead) {
    add(R::kQNorm, {s.head_dim});
    add(R::kKNorm, {s.head_dim});
  } else if (s.qk_norm == QkNorm::kWholeProjection) {
    add(R::kQNorm, {q});
    add(R::kKNorm, {kv});
  }
  return out;
}

std::vector<TensorEntry> layer_tensors(const ModelShape& s, int layer, const LayerPlan* op, ExpertLayout layout) {
  using R = TensorRole;
  std::vector<TensorEntry> out;
  if (op && op->op == LayerOp::kDropBlock) return out;  // the whole block is gone
  const int64_t D = s.hidden_size, I = s.expert_intermediate_size, shared = s.shared_intermediate_size;
  auto add = [&](TensorRole role, std::vector<int64_t> shape, int64_t per_expert = 0) {
    out.push_back({role, layer, std::move(shape), per_expert});
  };
  auto add_mlp = [&](TensorRole gate, int64_t inner, int64_t per_expert = 0) {  // gate, up, down follow each other
    add(gate, {inner, D}, per_expert);
    add(TensorRole(int(gate) + 1), {inner, D}, per_expert);
    add(TensorRole(int(gate) + 2), {D, inner}, per_expert);
  };
  add(R::kInputNorm, {D});
  for (TensorEntry& entry : attention_tensors(s, layer)) out.push_back(std::move(entry));
  if (op && op->op == LayerOp::kDrop) return out;  // attention only
  add(R::kPostNorm, {D});
  if (!s.is_moe_layer(layer)) {
    add_mlp(R::kMlpGate, s.dense_intermediate_size);
  } else if (op && op->op == LayerOp::kCondense) {
    add_mlp(R::kMlpGate, shared + int64_t(op->experts.size()) * I);  // the fused dense MLP
  } else {
    const int64_t E = op ? int64_t(op->experts.size()) : s.num_routed_experts;  // pruned: renumbered
    add(R::kRouter, {E, D});
    if (s.router == RouterKind::kSigmoidGroups) add(R::kRouterBias, {E});
    if (layout == ExpertLayout::kFused && !op) {
      add(R::kFusedExpertGateUp, {E, 2 * I, D});
      add(R::kFusedExpertDown, {E, D, I});
    } else {
      add_mlp(R::kExpertGate, I, E);
    }
    if (shared > 0) add_mlp(R::kSharedGate, shared);
    if (s.shared_expert_gate) add(R::kSharedExpertGate, {1, D});
  }
  return out;
}

std::vector<TensorEntry> model_tensors(const ModelShape& s, const Plan& plan, ExpertLayout layout) {
  const int64_t D = s.hidden_size, V = s.vocab_size;
  std::vector<TensorEntry> out = {{TensorRole::kEmbedding, -1, {V, D}}, {TensorRole::kFinalNorm, -1, {D}}};
  if (!s.tie_word_embeddings) out.push_back({TensorRole::kLmHead, -1, {V, D}});
  for (int layer = 0; layer < s.num_layers; ++layer) {
    auto it = plan.layers().find(layer);
    for (TensorEntry& entry : layer_tensors(s, layer, it == plan.layers().end() ? nullptr : &it->second, layout)) {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

void for_each_tensor(const std::vector<TensorEntry>& entries,
                     const std::function<void(const TensorEntry& entry, int64_t expert)>& visit) {
  for (size_t i = 0; i < entries.size();) {
    if (entries[i].per_expert == 0) {
      visit(entries[i++], -1);
      continue;
    }
    size_t end = i;  // the run of per-expert entries (one expert's tensors)
    while (end < entries.size() && entries[end].per_expert == entries[i].per_expert && entries[end].layer == entries[i].layer) ++end;
    for (int64_t e = 0; e < entries[i].per_expert; ++e) {
      for (size_t j = i; j < end; ++j) visit(entries[j], e);
    }
    i = end;
  }
}

}  // namespace cdmoe
