#include "core/param_count.h"

#include <numeric>

#include "core/error.h"
#include "core/model_shape.h"
#include "core/plan.h"

namespace cdmoe {
namespace {

int64_t swiglu_mlp(int64_t hidden, int64_t inner) { return 3 * hidden * inner; }  // gate, up, down

int64_t latent_attention(const ModelShape& s) {
  const LatentAttention& a = s.latent;
  const int64_t d = s.hidden_size, qk = s.query_key_width(), kv_a = a.kv_lora_rank + a.qk_rope_head_dim;
  int64_t q = a.q_lora_rank ? d * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * qk : d * qk;  // q_a, its norm, q_b
  int64_t kv = d * kv_a + a.kv_lora_rank + a.kv_lora_rank * s.num_attention_heads * (a.qk_nope_head_dim + a.v_head_dim);
  int64_t o = s.value_width() * d;
  int64_t biases = s.attention_output_bias ? (a.q_lora_rank ? a.q_lora_rank : 0) + kv_a + d : 0;  // q_a, kv_a, o
  return q + kv + o + biases;
}

}  // namespace

int64_t attention_parameters(const ModelShape& s) {
  if (s.latent_attention) return latent_attention(s);
  int64_t q = s.num_attention_heads * s.head_dim;
  int64_t kv = s.num_key_value_heads * s.head_dim;
  int64_t weights = s.hidden_size * (q + 2 * kv) + q * s.hidden_size;
  int64_t biases = (s.attention_qkv_bias ? q + 2 * kv : 0) + (s.attention_output_bias ? s.hidden_size : 0);
  int64_t qk_norms = s.qk_norm == QkNorm::kPerHead ? 2 * s.head_dim : s.qk_norm == QkNorm::kWholeProjection ? q + kv : 0;
  return weights + biases + qk_norms;
}

namespace {

int64_t moe_block(const ModelShape& s, int64_t experts_kept, bool with_router) {
  int64_t d = s.hidden_size;
  int64_t count = experts_kept * swiglu_mlp(d, s.expert_intermediate_size) +
                  swiglu_mlp(d, s.shared_intermediate_size);
  // The router's rows, DeepSeek-V3's e_score_correction_bias entries, the shared-expert gate.
  if (with_router) {
    count += experts_kept * d + (s.router == RouterKind::kSigmoidGroups ? experts_kept : 0) + (s.shared_expert_gate ? d : 0);
  }
  return count;
}

int64_t mlp_block(const ModelShape& s, int layer, const LayerPlan* layer_plan) {
  if (layer_plan != nullptr && removes_mlp(layer_plan->op)) return 0;  // dense layers drop too
  if (!s.is_moe_layer(layer)) return swiglu_mlp(s.hidden_size, s.dense_intermediate_size);
  if (layer_plan == nullptr) return moe_block(s, s.num_routed_experts, /*with_router=*/true);
  switch (layer_plan->op) {
    case LayerOp::kCondense: return moe_block(s, int64_t(layer_plan->experts.size()), /*with_router=*/false);
    case LayerOp::kPrune: return moe_block(s, int64_t(layer_plan->experts.size()), /*with_router=*/true);
    case LayerOp::kDrop:
    case LayerOp::kDropBlock: return 0;
  }
  return 0;
}

}  // namespace

int64_t ParameterCount::total() const {
  return embedding + final_norm + lm_head + std::accumulate(per_layer.begin(), per_layer.end(), int64_t{0});
}

ParameterCount count_parameters(const ModelShape& shape, const Plan& plan) {
  ParameterCount count;
  int64_t d = shape.hidden_size;
  count.embedding = shape.vocab_size * d;
  count.final_norm = d;
  count.lm_head = shape.tie_word_embeddings ? 0 : shape.vocab_size * d;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    auto it = plan.layers().find(layer);
    const LayerPlan* layer_plan = it == plan.layers().end() ? nullptr : &it->second;
    if (layer_plan != nullptr && layer_plan->op == LayerOp::kDropBlock) {
      count.per_layer.push_back(0);  // attention, both norms and the MLP/MoE go
      continue;
    }
    bool dropped = layer_plan != nullptr && layer_plan->op == LayerOp::kDrop;
    int64_t norms = dropped ? d : 2 * d;  // a dropped block's post_attention_layernorm goes with it
    count.per_layer.push_back(attention_parameters(shape) + norms + mlp_block(shape, layer, layer_plan));
  }
  return count;
}

double parameter_ratio(const ModelShape& shape, const Plan& plan) {
  return double(count_parameters(shape, plan).total()) / double(count_parameters(shape, Plan()).total());
}

int64_t bytes_per_element(const std::string& dtype) {
  if (dtype == "float32" || dtype == "F32" || dtype == "fp32") return 4;
  if (dtype == "bfloat16" || dtype == "BF16" || dtype == "bf16") return 2;
  if (dtype == "float16" || dtype == "F16" || dtype == "fp16") return 2;
  if (dtype == "float64" || dtype == "F64") return 8;
  throw_bad_input("dtype \"" + dtype + "\" is not one of float32, bfloat16, float16, float64");
}

}  // namespace cdmoe
