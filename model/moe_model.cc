// The MoE transformer, top-down: model -> decoder layer -> attention -> MoE feed-forward ->
// experts. A layer's forward is two lines: h = x + attn(norm(x)); out = h + ffn(norm(h)).
// Shapes: B batch, T tokens, N = B·T flattened tokens, D hidden, H/KV heads, d head dim,
// E routed experts, k router top-k, I expert inner size.
#include "model/moe_model.h"

#include <cmath>
#include <limits>
#include <set>

#include <ATen/ATen.h>

#include "core/error.h"
#include "model/checkpoint.h"

namespace cdmoe::model {
namespace {

struct Mlp {  // SwiGLU: down(silu(gate x) * up x)
  at::Tensor gate, up, down;
  bool defined() const { return gate.defined(); }
  at::Tensor operator()(const at::Tensor& x) const {
    return at::linear(at::silu(at::linear(x, gate)) * at::linear(x, up), down);
  }
};

struct Moe {
  at::Tensor router;                                // [E, D]
  at::Tensor expert_gate, expert_up, expert_down;   // [E, I, D], [E, I, D], [E, D, I]
  Mlp shared;                                       // undefined when the family/config has none
  at::Tensor shared_gate;                           // [1, D], qwen2_moe only
};

struct Layer {
  at::Tensor input_norm, post_norm;
  at::Tensor q, k, v, o, q_bias, k_bias, v_bias, o_bias;
  bool is_moe = false;
  bool dropped = false;  // an exported checkpoint's dropped layer: attention only
  Mlp dense;
  Moe moe;
};

// Loads checkpoint tensors in the compute dtype after checking names and shapes against the config.
class WeightReader {
 public:
  WeightReader(const Checkpoint& checkpoint, at::TensorOptions options) : checkpoint_(checkpoint), options_(options) {}

  at::Tensor read(const std::string& name, std::vector<int64_t> shape) {
    at::Tensor out = at::empty(shape, options_);
    read_into(name, out);
    return out;
  }
  void read_into(const std::string& name, at::Tensor out) {
    Checkpoint::Located found = checkpoint_.find(name);
    if (!found.info) throw_bad_input(checkpoint_.dir() + ": missing tensor '" + name + "' (config.json implies it)");
    if (found.info->shape != out.sizes().vec()) {
      throw_bad_input(found.file->path() + ": tensor '" + name + "' has shape " + shape_text(found.info->shape) +
                      ", config.json implies " + shape_text(out.sizes().vec()));
    }
    at::ScalarType type = found.info->dtype == DType::kF32 ? at::kFloat
                          : found.info->dtype == DType::kF16 ? at::kHalf : at::kBFloat16;
    void* data = const_cast<uint8_t*>(found.file->tensor_data(*found.info));
    out.copy_(at::from_blob(data, out.sizes(), at::TensorOptions().dtype(type)));
    found.file->release(*found.info);
    used_.insert(name);
  }
  bool has(const std::string& name) const { return checkpoint_.find(name).info != nullptr; }
  void check_all_used(const std::set<std::string>& optional) const {
    for (const std::string& name : checkpoint_.tensor_names()) {
      if (!used_.count(name) && !optional.count(name)) {
        throw_bad_input(checkpoint_.find(name).file->path() + ": unexpected tensor '" + name +
                        "' (not part of a " + std::string(checkpoint_.config().value("model_type", "")) +
                        " model with this config.json)");
      }
    }
  }

 private:
  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
  }
  const Checkpoint& checkpoint_;
  at::TensorOptions options_;  // the compute dtype, on the model's device
  std::set<std::string> used_;
};

at::Tensor rotate_half(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

double RouterStats::average_weight(int layer, int expert) const {
  auto it = layers.find(layer);
  if (it == layers.end() || it->second.tokens[size_t(expert)] == 0) return 0;
  return it->second.weight_sum[size_t(expert)] / it->second.tokens[size_t(expert)];
}

double RouterStats::average_shared_gate(int layer) const {
  auto it = layers.find(layer);
  if (it == layers.end() || it->second.token_count == 0) return 1;
  return it->second.shared_gate_sum / it->second.token_count;
}

struct MoeModel::Impl {
  ModelConfig config;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // weights and activations
  at::TensorOptions weight_options() const { return at::TensorOptions().dtype(dtype).device(device); }
  Plan fixed;  // an exported checkpoint's plan
  at::Tensor embed_tokens, final_norm, lm_head;
  std::vector<Layer> layers;
  mutable std::map<std::string, Mlp> condensed_cache;  // key: layer + canonical layer plan with weights
  bool collecting = false;
  mutable RouterStats stats;
  MoeModel::LayerHook hook;

  // In float32 whatever the compute dtype, then back to it before the weight (as transformers).
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    at::Tensor wide = x.to(at::kFloat);
    return weight * (wide * at::rsqrt(wide.pow(2).mean(-1, true) + config.rms_norm_eps)).to(x.scalar_type());
  }

  at::Tensor attention(const Layer& L, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& cos,
                       const at::Tensor& sin) const {
    const ModelShape& s = config.shape;
    int64_t B = x.size(0), T = x.size(1), H = s.num_attention_heads, KV = s.num_key_value_heads, d = s.head_dim;
    at::Tensor q = at::linear(x, L.q, L.q_bias).view({B, T, H, d}).transpose(1, 2);    // [B, H, T, d]
    at::Tensor k = at::linear(x, L.k, L.k_bias).view({B, T, KV, d}).transpose(1, 2);   // [B, KV, T, d]
    at::Tensor v = at::linear(x, L.v, L.v_bias).view({B, T, KV, d}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (KV != H) {
      k = k.repeat_interleave(H / KV, 1);
      v = v.repeat_interleave(H / KV, 1);
    }
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(d)) + mask;  // [B, H, T, T]
    at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());      // float32 softmax
    at::Tensor out = at::matmul(probs, v);                                                 // [B, H, T, d]
    return at::linear(out.transpose(1, 2).reshape({B, T, H * d}), L.o, L.o_bias);
  }

  // Routed experts for the tokens of x [N, D]: the top-k among `candidates` (all experts, or
  // a pruned set), grouped by expert so each expert runs one GEMM over its tokens.
  at::Tensor routed(const Moe& M, const at::Tensor& x, const at::Tensor& candidates, int layer,
                    const at::Tensor& valid) const {
    const ModelShape& s = config.shape;
    at::Tensor router = candidates.defined() ? M.router.index_select(0, candidates) : M.router;
    // The router in float32 whatever the compute dtype (DeepSeek's gate does; Qwen2-MoE's
    // computes its logits in the model dtype and only the softmax in float32).
    at::Tensor probs = at::softmax(at::linear(x.to(at::kFloat), router.to(at::kFloat)), -1);  // [N, E']
    int64_t k = std::min<int64_t>(s.experts_per_token, probs.size(1));
    auto [top_weight, top_index] = probs.topk(k, -1);                            // [N, k]
    if (s.norm_topk_prob && k > 1) top_weight = top_weight / (top_weight.sum(-1, true) + config.traits.topk_norm_epsilon);
    if (candidates.defined()) top_index = candidates.index_select(0, top_index.flatten()).view(top_index.sizes());
    if (collecting && !candidates.defined()) record_routing(layer, top_index, top_weight, valid);

    int64_t N = x.size(0);
    at::Tensor flat_expert = top_index.flatten();                                // [N·k]
    at::Tensor order = flat_expert.argsort();
    at::Tensor token_of = at::arange(N, x.options().dtype(at::kLong)).repeat_interleave(k).index_select(0, order);
    at::Tensor weight_of = top_weight.flatten().index_select(0, order).to(x.scalar_type());
    const int64_t experts = M.router.size(0);  // fewer than E in an exported pruned layer
    at::Tensor counts = at::bincount(flat_expert, {}, experts).cpu();  // the loop bounds, on the host
    const int64_t* count = counts.data_ptr<int64_t>();
    at::Tensor out = at::zeros_like(x);
    int64_t offset = 0;
    for (int64_t e = 0; e < experts; ++e) {
      if (count[e] == 0) continue;
      at::Tensor tokens = token_of.narrow(0, offset, count[e]);
      at::Tensor xe = x.index_select(0, tokens);                                 // [n_e, D]
      at::Tensor h = at::silu(at::linear(xe, M.expert_gate[e])) * at::linear(xe, M.expert_up[e]);
      at::Tensor ye = at::linear(h, M.expert_down[e]) * weight_of.narrow(0, offset, count[e]).unsqueeze(1);
      out.index_add_(0, tokens, ye);
      offset += count[e];
    }
    return out;
  }

  void record_routing(int layer, const at::Tensor& top_index, const at::Tensor& top_weight, const at::Tensor& valid) const {
    RouterStats::Layer& entry = stats.layers[layer];
    size_t E = size_t(layers[size_t(layer)].moe.router.size(0));
    if (entry.tokens.empty()) entry.tokens.assign(E, 0), entry.weight_sum.assign(E, 0);
    at::Tensor keep = valid.unsqueeze(1).expand_as(top_index);
    at::Tensor experts = top_index.masked_select(keep);
    at::Tensor weights = top_weight.masked_select(keep).to(at::kDouble);
    at::Tensor tokens = at::bincount(experts, {}, int64_t(E)).to(at::kDouble);
    at::Tensor sums = at::zeros({int64_t(E)}, weights.options()).index_add_(0, experts, weights).cpu();
    tokens = tokens.cpu();
    for (size_t e = 0; e < E; ++e) {
      entry.tokens[e] += tokens[int64_t(e)].item<double>();
      entry.weight_sum[e] += sums[int64_t(e)].item<double>();
    }
  }

  at::Tensor shared_part(const Moe& M, const at::Tensor& x, int layer, const at::Tensor& valid, bool record) const {
    if (!M.shared.defined()) return at::zeros_like(x);
    at::Tensor y = M.shared(x);
    if (!config.traits.shared_expert_gate) return y;
    at::Tensor gate = at::sigmoid(at::linear(x, M.shared_gate));                // [N, 1]
    if (record) {
      RouterStats::Layer& entry = stats.layers[layer];
      entry.shared_gate_sum += gate.squeeze(1).masked_select(valid).to(at::kDouble).sum().item<double>();
      entry.token_count += double(valid.sum().item<int64_t>());
    }
    return gate * y;
  }

  // The condensed layer as ONE dense SwiGLU MLP: shared expert(s) and the kept experts side by
  // side, each kept expert's weight (and the shared weight) folded into its down columns.
  const Mlp& condensed(const Moe& M, int layer, const LayerPlan& lp) const {
    std::vector<double> weights = lp.weights;
    if (weights.empty()) {
      for (int e : lp.experts) weights.push_back(stats.average_weight(layer, e));
    }
    double shared_weight = lp.shared_weight ? *lp.shared_weight
                           : config.traits.shared_expert_gate ? stats.average_shared_gate(layer) : 1.0;
    bool needs_stats = (lp.weights.empty() && !lp.experts.empty()) ||
                       (!lp.shared_weight && config.traits.shared_expert_gate && lp.op == LayerOp::kCondense);
    if (needs_stats && !stats.layers.count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": condense without " +
                      (lp.weights.empty() && !lp.experts.empty() ? "weights" : "shared_weight") +
                      " needs router statistics measured on calibration data");
    }
    LayerPlan resolved{LayerOp::kCondense, lp.experts, weights, shared_weight};
    Plan key_plan;
    key_plan.set_layer(layer, resolved);
    std::string key = key_plan.canonical();
    auto it = condensed_cache.find(key);
    if (it != condensed_cache.end()) return it->second;
    std::vector<at::Tensor> gates, ups, downs;
    if (M.shared.defined()) {
      gates.push_back(M.shared.gate);
      ups.push_back(M.shared.up);
      downs.push_back(M.shared.down * shared_weight);
    }
    for (size_t i = 0; i < lp.experts.size(); ++i) {
      gates.push_back(M.expert_gate[lp.experts[i]]);
      ups.push_back(M.expert_up[lp.experts[i]]);
      downs.push_back(M.expert_down[lp.experts[i]] * weights[i]);
    }
    Mlp fused;
    if (gates.empty()) {  // no shared expert and no kept expert: the block outputs zeros
      const int64_t D = config.shape.hidden_size;
      fused = Mlp{at::zeros({0, D}, weight_options()), at::zeros({0, D}, weight_options()), at::zeros({D, 0}, weight_options())};
    } else {
      fused = Mlp{at::cat(gates, 0), at::cat(ups, 0), at::cat(downs, 1)};
    }
    return condensed_cache.emplace(key, std::move(fused)).first->second;
  }

  at::Tensor feed_forward(const Layer& L, int layer, const at::Tensor& x, const LayerPlan* lp,
                          const at::Tensor& valid) const {
    if (!L.is_moe) return L.dense(x);
    const Moe& M = L.moe;
    at::Tensor flat = x.reshape({-1, x.size(-1)});                               // [N, D]
    at::Tensor out;
    if (lp && lp->op == LayerOp::kCondense) {
      out = condensed(M, layer, *lp)(flat);
    } else {
      at::Tensor candidates;
      if (lp && lp->op == LayerOp::kPrune) {
        candidates = at::tensor(std::vector<int64_t>(lp->experts.begin(), lp->experts.end()), at::kLong).to(device);
      }
      bool record = collecting && !lp;
      out = routed(M, flat, candidates, layer, valid) + shared_part(M, flat, layer, valid, record);
    }
    return out.view(x.sizes());
  }
};

MoeModel::MoeModel() : impl_(std::make_unique<Impl>()) {}
MoeModel::~MoeModel() = default;

const ModelConfig& MoeModel::config() const { return impl_->config; }
const at::Device& MoeModel::device() const { return impl_->device; }
at::ScalarType MoeModel::dtype() const { return impl_->dtype; }

at::ScalarType compute_dtype_named(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  throw_bad_input("--dtype \"" + name + "\" is not one of float32, bfloat16");
}

std::string compute_dtype_name(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bfloat16" : "float32"; }

std::unique_ptr<MoeModel> MoeModel::load(const std::string& dir, const at::Device& device, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16) throw_runtime("MoeModel::load: compute dtype must be float32 or bfloat16");
  Checkpoint checkpoint(dir);
  std::unique_ptr<MoeModel> model(new MoeModel());
  Impl& m = *model->impl_;
  m.device = device;
  m.dtype = dtype;
  m.config = model_config_from_json(checkpoint.config(), checkpoint.config_path());
  const ModelShape& s = m.config.shape;
  const FamilyTraits& traits = m.config.traits;
  if (checkpoint.config().contains("cdmoe")) {
    std::string where = checkpoint.config_path() + ": cdmoe.plan";
    m.fixed = Plan::from_json(require_field(checkpoint.config()["cdmoe"], "plan", checkpoint.config_path() + ": cdmoe"), where);
    m.fixed.validate(s, where);
  }
  WeightReader reader(checkpoint, m.weight_options());
  const int64_t D = s.hidden_size, V = s.vocab_size, q_dim = s.num_attention_heads * s.head_dim,
                kv_dim = s.num_key_value_heads * s.head_dim, I = s.expert_intermediate_size;
  m.embed_tokens = reader.read("model.embed_tokens.weight", {V, D});
  m.final_norm = reader.read("model.norm.weight", {D});
  std::set<std::string> optional;
  if (s.tie_word_embeddings) {
    m.lm_head = m.embed_tokens;
    optional.insert("lm_head.weight");
  } else {
    m.lm_head = reader.read("lm_head.weight", {V, D});
  }
  auto read_mlp = [&](const std::string& prefix, int64_t inner) {
    return Mlp{reader.read(prefix + "gate_proj.weight", {inner, D}), reader.read(prefix + "up_proj.weight", {inner, D}),
               reader.read(prefix + "down_proj.weight", {D, inner})};
  };
  for (int layer = 0; layer < s.num_layers; ++layer) {
    std::string p = "model.layers." + std::to_string(layer) + ".";
    auto fixed = m.fixed.layers().find(layer);
    const LayerPlan* fixed_op = fixed == m.fixed.layers().end() ? nullptr : &fixed->second;
    Layer L;
    L.input_norm = reader.read(p + "input_layernorm.weight", {D});
    L.q = reader.read(p + "self_attn.q_proj.weight", {q_dim, D});
    L.k = reader.read(p + "self_attn.k_proj.weight", {kv_dim, D});
    L.v = reader.read(p + "self_attn.v_proj.weight", {kv_dim, D});
    L.o = reader.read(p + "self_attn.o_proj.weight", {D, q_dim});
    if (s.attention_qkv_bias) {
      L.q_bias = reader.read(p + "self_attn.q_proj.bias", {q_dim});
      L.k_bias = reader.read(p + "self_attn.k_proj.bias", {kv_dim});
      L.v_bias = reader.read(p + "self_attn.v_proj.bias", {kv_dim});
    }
    if (s.attention_output_bias) L.o_bias = reader.read(p + "self_attn.o_proj.bias", {D});
    if (fixed_op && fixed_op->op == LayerOp::kDrop) {
      L.dropped = true;
      m.layers.push_back(std::move(L));
      continue;
    }
    L.post_norm = reader.read(p + "post_attention_layernorm.weight", {D});
    L.is_moe = s.is_moe_layer(layer);
    if (!L.is_moe) {
      L.dense = read_mlp(p + "mlp.", s.dense_intermediate_size);
    } else if (fixed_op && fixed_op->op == LayerOp::kCondense) {
      L.is_moe = false;  // exported as its fused dense MLP
      L.dense = read_mlp(p + "mlp.", s.shared_intermediate_size + int64_t(fixed_op->experts.size()) * I);
    } else {
      Moe& M = L.moe;
      const int64_t E = fixed_op ? int64_t(fixed_op->experts.size()) : s.num_routed_experts;  // pruned: renumbered
      M.router = reader.read(p + "mlp.gate.weight", {E, D});
      M.expert_gate = at::empty({E, I, D}, m.weight_options());
      M.expert_up = at::empty({E, I, D}, m.weight_options());
      M.expert_down = at::empty({E, D, I}, m.weight_options());
      for (int64_t e = 0; e < E; ++e) {
        std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
        reader.read_into(ep + "gate_proj.weight", M.expert_gate[e]);
        reader.read_into(ep + "up_proj.weight", M.expert_up[e]);
        reader.read_into(ep + "down_proj.weight", M.expert_down[e]);
      }
      if (s.shared_intermediate_size > 0) {
        M.shared = read_mlp(p + "mlp." + traits.shared_prefix + ".", s.shared_intermediate_size);
      }
      if (traits.shared_expert_gate) M.shared_gate = reader.read(p + "mlp.shared_expert_gate.weight", {1, D});
    }
    m.layers.push_back(std::move(L));
  }
  reader.check_all_used(optional);
  return model;
}

at::Tensor MoeModel::embed(const at::Tensor& ids) const {
  int64_t V = shape().vocab_size;
  if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= V)) {
    throw_bad_input("token ids must be in 0.." + std::to_string(V - 1) + " (the model's vocabulary)");
  }
  at::Tensor rows = ids.flatten().to(impl_->device);
  return impl_->embed_tokens.index_select(0, rows).view({ids.size(0), ids.size(1), shape().hidden_size});
}

at::Tensor MoeModel::run_layers(const at::Tensor& hidden, const at::Tensor& mask, int from, int to, const Plan& plan) const {
  const Impl& m = *impl_;
  const ModelShape& s = shape();
  plan.validate(s, "plan");
  if (from < 0 || to > s.num_layers || from > to) throw_runtime("run_layers: bad layer range");
  int64_t B = hidden.size(0), T = hidden.size(1);
  if (T > s.max_position_embeddings) {
    throw_bad_input("sequence of " + std::to_string(T) + " tokens exceeds max_position_embeddings " +
                    std::to_string(s.max_position_embeddings));
  }
  // Additive attention mask [B, 1, T, T]: 0 where a query may see a key, the compute dtype's
  // lowest finite value elsewhere (as transformers does, so a row with no visible key stays finite).
  const at::TensorOptions flags = at::TensorOptions().dtype(at::kBool).device(m.device);
  const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(m.device);
  at::Tensor causal = at::ones({T, T}, flags).tril();
  at::Tensor valid = mask.defined() ? mask.to(m.device, at::kBool) : at::ones({B, T}, flags);
  at::Tensor allowed = causal.view({1, 1, T, T}) & valid.view({B, 1, 1, T});
  double lowest = m.dtype == at::kBFloat16 ? double(std::numeric_limits<c10::BFloat16>::lowest())
                                           : double(std::numeric_limits<float>::lowest());
  at::Tensor additive = at::where(allowed, at::zeros({}, m.weight_options()), at::full({}, lowest, m.weight_options()));
  // RoPE tables [T, d] for positions 0..T-1 (divided by the linear scaling factor), computed in
  // float32 and then cast to the compute dtype (as transformers).
  int64_t d = s.head_dim;
  at::Tensor inv_freq = 1.0 / at::pow(m.config.rope_theta, at::arange(0, d, 2, floats) / double(d));
  at::Tensor positions = at::arange(T, floats) / m.config.rope_linear_factor;
  at::Tensor freqs = at::outer(positions, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::Tensor cos = emb.cos().to(m.dtype), sin = emb.sin().to(m.dtype);
  at::Tensor flat_valid = valid.flatten();

  at::Tensor h = hidden.to(m.device, m.dtype);
  for (int layer = from; layer < to; ++layer) {
    const Layer& L = m.layers[size_t(layer)];
    auto it = plan.layers().find(layer);
    const LayerPlan* lp = it == plan.layers().end() ? nullptr : &it->second;
    if (lp && m.fixed.layers().count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": this exported checkpoint has the layer " +
                      layer_op_name(m.fixed.layers().at(layer).op) + "d already");
    }
    at::Tensor input = h;
    h = h + m.attention(L, m.rms_norm(h, L.input_norm), additive, cos, sin);
    if (!L.dropped && !(lp && lp->op == LayerOp::kDrop)) {
      h = h + m.feed_forward(L, layer, m.rms_norm(h, L.post_norm), lp, flat_valid);
    }
    if (m.hook) m.hook(layer, input, h);
  }
  return h;
}

at::Tensor MoeModel::head(const at::Tensor& hidden) const {
  return at::linear(impl_->rms_norm(hidden, impl_->final_norm), impl_->lm_head).to(at::kFloat);
}

at::Tensor MoeModel::final_norm(const at::Tensor& hidden) const { return impl_->rms_norm(hidden, impl_->final_norm); }
const at::Tensor& MoeModel::lm_head_weight() const { return impl_->lm_head; }

at::Tensor MoeModel::logits(const at::Tensor& ids, const at::Tensor& mask, const Plan& plan) const {
  return head(run_layers(embed(ids), mask, 0, int(shape().num_layers), plan));
}

const Plan& MoeModel::fixed_plan() const { return impl_->fixed; }

std::vector<std::pair<std::string, at::Tensor>> MoeModel::materialise(const Plan& plan) const {
  const Impl& m = *impl_;
  const ModelShape& s = shape();
  plan.validate(s, "plan");
  std::vector<std::pair<std::string, at::Tensor>> out = {{"model.embed_tokens.weight", m.embed_tokens},
                                                         {"model.norm.weight", m.final_norm}};
  if (!s.tie_word_embeddings) out.emplace_back("lm_head.weight", m.lm_head);
  auto add_mlp = [&](const std::string& prefix, const Mlp& mlp) {
    out.emplace_back(prefix + "gate_proj.weight", mlp.gate);
    out.emplace_back(prefix + "up_proj.weight", mlp.up);
    out.emplace_back(prefix + "down_proj.weight", mlp.down);
  };
  for (int layer = 0; layer < s.num_layers; ++layer) {
    const Layer& L = m.layers[size_t(layer)];
    std::string p = "model.layers." + std::to_string(layer) + ".";
    auto it = plan.layers().find(layer);
    const LayerPlan* lp = it == plan.layers().end() ? nullptr : &it->second;
    if (lp && m.fixed.layers().count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": this exported checkpoint has it fixed already");
    }
    out.emplace_back(p + "input_layernorm.weight", L.input_norm);
    for (auto [name, tensor] : {std::pair{"q_proj.weight", L.q}, {"k_proj.weight", L.k}, {"v_proj.weight", L.v},
                                {"o_proj.weight", L.o}, {"q_proj.bias", L.q_bias}, {"k_proj.bias", L.k_bias},
                                {"v_proj.bias", L.v_bias}, {"o_proj.bias", L.o_bias}}) {
      if (tensor.defined()) out.emplace_back(p + "self_attn." + name, tensor);
    }
    if (L.dropped || (lp && lp->op == LayerOp::kDrop)) continue;
    out.emplace_back(p + "post_attention_layernorm.weight", L.post_norm);
    if (!L.is_moe) {
      add_mlp(p + "mlp.", L.dense);
      continue;
    }
    if (lp && lp->op == LayerOp::kCondense) {
      add_mlp(p + "mlp.", m.condensed(L.moe, layer, *lp));
      continue;
    }
    const Moe& M = L.moe;
    std::vector<int64_t> kept;
    if (lp) kept.assign(lp->experts.begin(), lp->experts.end());
    else for (int64_t e = 0; e < M.router.size(0); ++e) kept.push_back(e);
    out.emplace_back(p + "mlp.gate.weight", M.router.index_select(0, at::tensor(kept, at::kLong).to(m.device)));
    for (size_t i = 0; i < kept.size(); ++i) {
      std::string ep = p + "mlp.experts." + std::to_string(i) + ".";
      out.emplace_back(ep + "gate_proj.weight", M.expert_gate[kept[i]]);
      out.emplace_back(ep + "up_proj.weight", M.expert_up[kept[i]]);
      out.emplace_back(ep + "down_proj.weight", M.expert_down[kept[i]]);
    }
    if (M.shared.defined()) add_mlp(p + "mlp." + m.config.traits.shared_prefix + ".", M.shared);
    if (M.shared_gate.defined()) out.emplace_back(p + "mlp.shared_expert_gate.weight", M.shared_gate);
  }
  return out;
}

void MoeModel::set_layer_hook(LayerHook hook) { impl_->hook = std::move(hook); }

void MoeModel::collect_router_stats(bool on) { impl_->collecting = on; }
const RouterStats& MoeModel::router_stats() const { return impl_->stats; }
void MoeModel::set_router_stats(RouterStats stats) {
  impl_->stats = std::move(stats);
  impl_->condensed_cache.clear();  // defaults of cached condensed layers may have changed
}

}  // namespace cdmoe::model
