#include "model/weight_names.h"

#include <set>

#include "core/error.h"

namespace cdmoe::model {

MlpNames mlp_names(const std::string& prefix, const SwigluNames& projections) {
  return {prefix + projections.gate + ".weight", prefix + projections.up + ".weight", prefix + projections.down + ".weight"};
}

MlpNames LayerNames::expert(int64_t e) const {
  return mlp_names(experts_prefix + std::to_string(e) + ".", expert_projections);
}

LayerNames layer_names(const Family& family, int layer, bool fused) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  // Dense layers (and an exported condensed layer's fused MLP) sit under "mlp." in every family;
  // the MoE block under the family's own block name.
  const std::string attn = p + "self_attn.", mlp = p + "mlp.", block = fused ? mlp : p + family.names.block;
  LayerNames n;
  n.input_norm = p + "input_layernorm.weight";
  n.post_norm = p + "post_attention_layernorm.weight";
  n.q = attn + "q_proj.weight", n.k = attn + "k_proj.weight", n.v = attn + "v_proj.weight", n.o = attn + "o_proj.weight";
  n.q_bias = attn + "q_proj.bias", n.k_bias = attn + "k_proj.bias", n.v_bias = attn + "v_proj.bias";
  n.o_bias = attn + "o_proj.bias";
  n.q_norm = attn + "q_norm.weight", n.k_norm = attn + "k_norm.weight";
  n.mlp = mlp_names(mlp);
  n.block = block;
  n.router = block + family.names.router;
  n.shared = mlp_names(block + family.names.shared_mlp);
  if (*family.names.shared_gate) n.shared_gate = block + family.names.shared_gate;
  n.experts_prefix = block + family.names.experts;
  n.expert_projections = family.names.expert;
  n.fused_gate_up = n.experts_prefix + "gate_up_proj";
  n.fused_down = n.experts_prefix + "down_proj";
  return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::vector<TensorSpec> qk_norm_tensors(const ModelShape& s, const LayerNames& n) {
  switch (s.qk_norm) {
    case QkNorm::kNone: return {};
    case QkNorm::kPerHead: return {{n.q_norm, {s.head_dim}}, {n.k_norm, {s.head_dim}}};
    case QkNorm::kWholeProjection:
      return {{n.q_norm, {s.num_attention_heads * s.head_dim}}, {n.k_norm, {s.num_key_value_heads * s.head_dim}}};
  }
  return {};
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const Plan& fixed) {
  const ModelShape& s = config.shape;
  const int64_t D = s.hidden_size, V = s.vocab_size, q_dim = s.num_attention_heads * s.head_dim,
                kv_dim = s.num_key_value_heads * s.head_dim, I = s.expert_intermediate_size;
  std::vector<TensorSpec> out = {{kEmbedTokensName, {V, D}}, {kFinalNormName, {D}}};
  if (!s.tie_word_embeddings) out.push_back({kLmHeadName, {V, D}});
  auto add_mlp = [&](const MlpNames& names, int64_t inner) {
    out.push_back({names.gate, {inner, D}});
    out.push_back({names.up, {inner, D}});
    out.push_back({names.down, {D, inner}});
  };
  for (int layer = 0; layer < s.num_layers; ++layer) {
    auto it = fixed.layers().find(layer);
    const LayerNames n = layer_names(*config.family, layer, config.fused_experts && it == fixed.layers().end());
    const LayerPlan* fixed_op = it == fixed.layers().end() ? nullptr : &it->second;
    if (fixed_op && fixed_op->op == LayerOp::kDropBlock) continue;  // the whole block is gone
    out.push_back({n.input_norm, {D}});
    out.push_back({n.q, {q_dim, D}});
    out.push_back({n.k, {kv_dim, D}});
    out.push_back({n.v, {kv_dim, D}});
    out.push_back({n.o, {D, q_dim}});
    if (s.attention_qkv_bias) {
      out.push_back({n.q_bias, {q_dim}});
      out.push_back({n.k_bias, {kv_dim}});
      out.push_back({n.v_bias, {kv_dim}});
    }
    if (s.attention_output_bias) out.push_back({n.o_bias, {D}});
    for (const TensorSpec& norm : qk_norm_tensors(s, n)) out.push_back(norm);
    if (fixed_op && fixed_op->op == LayerOp::kDrop) continue;  // attention only
    out.push_back({n.post_norm, {D}});
    if (!s.is_moe_layer(layer)) {
      add_mlp(n.mlp, s.dense_intermediate_size);
    } else if (fixed_op && fixed_op->op == LayerOp::kCondense) {
      add_mlp(n.mlp, s.shared_intermediate_size + int64_t(fixed_op->experts.size()) * I);  // the fused dense MLP
    } else {
      const int64_t E = fixed_op ? int64_t(fixed_op->experts.size()) : s.num_routed_experts;  // pruned: renumbered
      out.push_back({n.router, {E, D}});
      if (config.fused_experts && !fixed_op) {
        out.push_back({n.fused_gate_up, {E, 2 * I, D}});
        out.push_back({n.fused_down, {E, D, I}});
      } else {
        for (int64_t e = 0; e < E; ++e) add_mlp(n.expert(e), I);
      }
      if (s.shared_intermediate_size > 0) add_mlp(n.shared, s.shared_intermediate_size);
      if (config.family->shared_expert_gate) out.push_back({n.shared_gate, {1, D}});
    }
  }
  return out;
}

void check_checkpoint_tensors(const Checkpoint& checkpoint, const ModelConfig& config, const Plan& fixed) {
  const std::vector<std::string> present = checkpoint.tensor_names();
  // A config that implies more tensors than the files hold is wrong before any name is built
  // (n_routed_experts 2^24 would otherwise enumerate 50 million names).
  const ModelShape& s = config.shape;
  int64_t implied = 0;
  for (int layer = 0; layer < s.num_layers; ++layer) {
    auto op = fixed.layers().find(layer);
    if (op != fixed.layers().end()) implied += op->second.op == LayerOp::kDropBlock ? 0 : 5;  // at least its attention
    else implied += 6 + (!s.is_moe_layer(layer) ? 3 : config.fused_experts ? 2 : 3 * s.num_routed_experts);
    if (implied > int64_t(present.size()) + 1) {
      throw_bad_input(checkpoint.config_path() + ": config.json implies at least " + std::to_string(implied) +
                      " tensors by layer " + std::to_string(layer) + ", the checkpoint holds " +
                      std::to_string(present.size()) + " (num_hidden_layers or the expert count disagrees with the weights)");
    }
  }
  std::set<std::string> expected_names;
  for (const TensorSpec& spec : expected_tensors(config, fixed)) {
    expected_names.insert(spec.name);
    Checkpoint::Located found = checkpoint.find(spec.name);
    if (!found.info) {
      throw_bad_input(checkpoint.dir() + ": missing tensor '" + spec.name + "' (config.json implies it)");
    }
    if (found.info->shape != spec.shape) {
      throw_bad_input(found.file->path() + ": tensor '" + spec.name + "' has shape " + shape_text(found.info->shape) +
                      ", config.json implies " + shape_text(spec.shape));
    }
  }
  for (const std::string& name : present) {
    if (expected_names.count(name) || (s.tie_word_embeddings && name == kLmHeadName)) continue;
    throw_bad_input(checkpoint.find(name).file->path() + ": unexpected tensor '" + name + "' (not part of a " +
                    s.model_type + " model with this config.json)");
  }
}

ModelConfig read_checkpoint_config(const Checkpoint& checkpoint) {
  ModelConfig config = model_config_from_json(checkpoint.config(), checkpoint.config_path());
  const Plan fixed = fixed_plan_of(checkpoint, config.shape);
  for (int layer : config.shape.moe_layers()) {
    if (fixed.layers().count(layer)) continue;  // exported layers are written per expert
    config.fused_experts = checkpoint.find(layer_names(*config.family, layer, true).fused_gate_up).info != nullptr;
    break;
  }
  return config;
}

Plan fixed_plan_of(const Checkpoint& checkpoint, const ModelShape& shape) {
  if (!checkpoint.config().contains("cdmoe")) return Plan();
  std::string where = checkpoint.config_path() + ": cdmoe.plan";
  return with_json_errors(checkpoint.config_path(), [&] {
    Plan fixed = Plan::from_json(require_field(checkpoint.config()["cdmoe"], "plan", checkpoint.config_path() + ": cdmoe"), where);
    fixed.validate(shape, where);
    return fixed;
  });
}

}  // namespace cdmoe::model
