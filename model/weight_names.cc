#include "model/weight_names.h"

#include <algorithm>
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
  n.q_a = attn + "q_a_proj.weight", n.q_a_norm = attn + "q_a_layernorm.weight", n.q_b = attn + "q_b_proj.weight";
  n.kv_a = attn + "kv_a_proj_with_mqa.weight", n.kv_a_norm = attn + "kv_a_layernorm.weight";
  n.kv_b = attn + "kv_b_proj.weight", n.q_a_bias = attn + "q_a_proj.bias", n.kv_a_bias = attn + "kv_a_proj_with_mqa.bias";
  n.mlp = mlp_names(mlp);
  n.block = block;
  n.router = block + family.names.router;
  n.router_bias = block + "gate.e_score_correction_bias";
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

std::string tensor_name(const LayerNames& n, const TensorEntry& entry, int64_t expert) {
  using R = TensorRole;
  switch (entry.role) {
    case R::kEmbedding: return kEmbedTokensName;
    case R::kFinalNorm: return kFinalNormName;
    case R::kLmHead: return kLmHeadName;
    case R::kInputNorm: return n.input_norm;
    case R::kPostNorm: return n.post_norm;
    case R::kQ: return n.q;
    case R::kK: return n.k;
    case R::kV: return n.v;
    case R::kO: return n.o;
    case R::kQBias: return n.q_bias;
    case R::kKBias: return n.k_bias;
    case R::kVBias: return n.v_bias;
    case R::kOBias: return n.o_bias;
    case R::kQNorm: return n.q_norm;
    case R::kKNorm: return n.k_norm;
    case R::kQA: return n.q_a;
    case R::kQABias: return n.q_a_bias;
    case R::kQANorm: return n.q_a_norm;
    case R::kQB: return n.q_b;
    case R::kKvA: return n.kv_a;
    case R::kKvABias: return n.kv_a_bias;
    case R::kKvANorm: return n.kv_a_norm;
    case R::kKvB: return n.kv_b;
    case R::kMlpGate: return n.mlp.gate;
    case R::kMlpUp: return n.mlp.up;
    case R::kMlpDown: return n.mlp.down;
    case R::kRouter: return n.router;
    case R::kRouterBias: return n.router_bias;
    case R::kExpertGate: return n.expert(expert).gate;
    case R::kExpertUp: return n.expert(expert).up;
    case R::kExpertDown: return n.expert(expert).down;
    case R::kFusedExpertGateUp: return n.fused_gate_up;
    case R::kFusedExpertDown: return n.fused_down;
    case R::kSharedGate: return n.shared.gate;
    case R::kSharedUp: return n.shared.up;
    case R::kSharedDown: return n.shared.down;
    case R::kSharedExpertGate: return n.shared_gate;
  }
  throw_runtime("a tensor role without a name");
}

void for_each_named_tensor(const Family& family, const std::vector<TensorEntry>& entries, ExpertLayout layout,
                           const Plan& planned,
                           const std::function<void(const TensorEntry&, int64_t expert, const std::string& name)>& visit) {
  int named_layer = -1;
  LayerNames names;
  for_each_tensor(entries, [&](const TensorEntry& entry, int64_t expert) {
    if (entry.layer >= 0 && entry.layer != named_layer) {
      named_layer = entry.layer;
      names = layer_names(family, entry.layer, layout == ExpertLayout::kFused && !planned.layers().count(entry.layer));
    }
    visit(entry, expert, tensor_name(names, entry, expert));
  });
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const Plan& fixed) {
  std::vector<TensorSpec> out;
  for_each_named_tensor(*config.family, model_tensors(config.shape, fixed, config.expert_layout), config.expert_layout, fixed,
                        [&](const TensorEntry& entry, int64_t, const std::string& name) { out.push_back({name, entry.shape}); });
  return out;
}

namespace {

// An F8_E4M3 weight: 2-D, config.json says its blocks, and its `_scale_inv` is there with one
// float per block. Returns the scale's name.
std::string check_fp8_scale(const Checkpoint& checkpoint, const ModelConfig& config, const std::string& name,
                            const Checkpoint::Located& weight) {
  const std::string at = weight.file->path() + ": tensor '" + name + "'";
  if (!config.fp8.on()) {
    throw_bad_input(at + " is F8_E4M3, and config.json has no quantization_config (fp8 with weight_block_size)");
  }
  if (weight.info->shape.size() != 2) {
    throw_bad_input(at + " is F8_E4M3 with " + std::to_string(weight.info->shape.size()) +
                    " dimensions; only 2-D weights with block scales are supported");
  }
  const std::string scale_name = name + "_scale_inv";
  Checkpoint::Located scale = checkpoint.find(scale_name);
  if (!scale.info) throw_bad_input(at + " is F8_E4M3 without its scale '" + scale_name + "'");
  const std::vector<int64_t> blocks = {(weight.info->shape[0] + config.fp8.rows - 1) / config.fp8.rows,
                                       (weight.info->shape[1] + config.fp8.cols - 1) / config.fp8.cols};
  if (scale.info->shape != blocks || scale.info->dtype == DType::kF8E4M3) {
    throw_bad_input(scale.file->path() + ": scale '" + scale_name + "' is " + dtype_name(scale.info->dtype) + " " +
                    shape_text(scale.info->shape) + ", weight_block_size implies a float " + shape_text(blocks));
  }
  return scale_name;
}

}  // namespace

void check_checkpoint_tensors(const Checkpoint& checkpoint, const ModelConfig& config, const Plan& fixed) {
  const std::vector<std::string> present = checkpoint.tensor_names();
  // A config that implies more tensors than the files hold is wrong before any name is built
  // (n_routed_experts 2^24 would otherwise enumerate 50 million names): the table counts them
  // without expanding the experts.
  const ModelShape& s = config.shape;
  const std::vector<TensorEntry> table = model_tensors(s, fixed, config.expert_layout);
  int64_t implied = 0;
  for (const TensorEntry& entry : table) {
    implied += std::max<int64_t>(1, entry.per_expert);
    // Only a gross disagreement is refused here; a few tensors off are named one by one below.
    if (implied > 2 * int64_t(present.size()) + 1024) {
      throw_bad_input(checkpoint.config_path() + ": config.json implies at least " + std::to_string(implied) +
                      " tensors by layer " + std::to_string(std::max(entry.layer, 0)) + ", the checkpoint holds " +
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
    if (found.info->dtype == DType::kF8E4M3) expected_names.insert(check_fp8_scale(checkpoint, config, spec.name, found));
  }
  // Layers past num_hidden_layers that the family ignores (DeepSeek-V3's multi-token prediction).
  auto ignored = [&](const std::string& name) {
    for (int64_t layer = s.num_layers; layer < s.num_layers + s.ignored_trailing_layers; ++layer) {
      if (name.rfind("model.layers." + std::to_string(layer) + ".", 0) == 0) return true;
    }
    return false;
  };
  for (const std::string& name : present) {
    if (expected_names.count(name) || (s.tie_word_embeddings && name == kLmHeadName) || ignored(name)) continue;
    throw_bad_input(checkpoint.find(name).file->path() + ": unexpected tensor '" + name + "' (not part of a " +
                    s.model_type + " model with this config.json)");
  }
}

std::vector<TensorEntry> checkpoint_tensor_table(const Checkpoint& checkpoint) {
  const ModelConfig config = read_checkpoint_config(checkpoint);
  return model_tensors(config.shape, fixed_plan_of(checkpoint, config.shape), config.expert_layout);
}

ModelConfig read_checkpoint_config(const Checkpoint& checkpoint) {
  ModelConfig config = model_config_from_json(checkpoint.config(), checkpoint.config_path());
  const Plan fixed = fixed_plan_of(checkpoint, config.shape);
  for (int layer : config.shape.moe_layers()) {
    if (fixed.layers().count(layer)) continue;  // exported layers are written per expert
    config.expert_layout = checkpoint.find(layer_names(*config.family, layer, true).fused_gate_up).info != nullptr
                               ? ExpertLayout::kFused
                               : ExpertLayout::kPerExpert;
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
