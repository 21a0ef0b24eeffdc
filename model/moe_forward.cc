// The forward pass, read top-down: logits -> layers (a decoder block is two lines:
// h = x + attn(norm(x)); out = h + ffn(norm(h))) -> attention (standard or latent) ->
// feed-forward (dense, or the MoE block: shared part + routed experts) -> routing (one function
// per router kind) -> the routed experts' dispatch. What differs between families comes from
// model/family.h; plan ops from plan_ops.cc.
#include <cmath>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>

#include "core/error.h"
#include "model/moe_model_impl.h"

namespace cdmoe::model {
namespace {

at::Tensor rotate_half(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// The kept experts of E as a [E] bool mask (all when `candidates` is undefined).
at::Tensor kept_mask(int64_t E, const at::Tensor& candidates, const at::TensorOptions& options) {
  at::Tensor kept = at::ones({E}, options.dtype(at::kBool));
  return candidates.defined() ? at::zeros_like(kept).index_fill_(0, candidates, true) : kept;
}

// [N, E] bool: the experts of the `chosen` groups [N, topk_group] (groups of E / G consecutive experts).
at::Tensor experts_of_groups(const at::Tensor& chosen, int64_t G, int64_t E) {
  const int64_t N = chosen.size(0);
  at::Tensor group_mask = at::zeros({N, G}, chosen.options().dtype(at::kBool)).scatter_(1, chosen, true);
  return group_mask.unsqueeze(-1).expand({N, G, E / G}).reshape({N, E});
}

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

}  // namespace

// ---- The model: embeddings, layers, head ----

at::Tensor MoeModel::logits(const at::Tensor& ids, const at::Tensor& mask, const Plan& plan) const {
  return head(run_layers(embed(ids), mask, 0, int(shape().num_layers), plan));
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
  int64_t B = hidden.size(0), T = hidden.size(1);
  const at::TensorOptions flags = at::TensorOptions().dtype(at::kBool).device(m.device);
  TokenLayout layout;
  layout.valid = mask.defined() ? mask.to(m.device, at::kBool) : at::ones({B, T}, flags);
  layout.visible = at::ones({T, T}, flags).tril().view({1, T, T}) & layout.valid.view({B, 1, T});
  layout.positions = at::arange(T, at::TensorOptions().dtype(at::kLong).device(m.device)).view({1, T});
  return run_layers(hidden, layout, from, to, plan);
}

at::Tensor MoeModel::run_layers(const at::Tensor& hidden, const TokenLayout& layout, int from, int to, const Plan& plan) const {
  const Impl& m = *impl_;
  const ModelShape& s = shape();
  plan.validate(s, "plan");
  ++m.forward_clock;  // condensed layers this forward uses are not evicted while it runs
  if (from < 0 || to > s.num_layers || from > to) throw_runtime("run_layers: bad layer range");
  int64_t T = hidden.size(1);
  int64_t last_position = T == 0 ? 0 : layout.positions.max().item<int64_t>() + 1;
  if (last_position > s.max_position_embeddings) {
    throw_bad_input("sequence of " + std::to_string(last_position) + " tokens exceeds max_position_embeddings " +
                    std::to_string(s.max_position_embeddings));
  }
  // Additive attention mask [B, 1, T, T]: 0 where a query may see a key, the compute dtype's
  // lowest finite value elsewhere (as transformers does, so a row with no visible key stays finite).
  const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(m.device);
  at::Tensor allowed = layout.visible.to(m.device, at::kBool).unsqueeze(1);
  double lowest = m.dtype == at::kBFloat16 ? double(std::numeric_limits<c10::BFloat16>::lowest())
                                           : double(std::numeric_limits<float>::lowest());
  at::Tensor additive = at::where(allowed, at::zeros({}, m.weight_options()), at::full({}, lowest, m.weight_options()));
  // RoPE tables [B or 1, 1, T, d] for the tokens' positions (divided by the linear scaling
  // factor), computed in float32 and then cast to the compute dtype (as transformers).
  at::Tensor inv_freq = m.rope_inverse_frequencies(floats);
  at::Tensor positions = layout.positions.to(floats) / m.config.rope_linear_factor;
  at::Tensor freqs = positions.unsqueeze(-1) * inv_freq;                       // [B or 1, T, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);
  const double attention_factor = m.config.yarn.on ? m.config.yarn.attention_factor : 1.0;
  at::Tensor cos = (emb.cos() * attention_factor).to(m.dtype), sin = (emb.sin() * attention_factor).to(m.dtype);
  at::Tensor flat_valid = layout.valid.to(m.device, at::kBool).flatten();

  at::Tensor h = hidden.to(m.device, m.dtype);
  for (int layer = from; layer < to; ++layer) {
    auto it = plan.layers().find(layer);
    const LayerPlan* lp = it == plan.layers().end() ? nullptr : &it->second;
    if (lp && m.fixed.layers().count(layer)) {
      throw_bad_input("plan layer \"" + std::to_string(layer) + "\": this exported checkpoint has the layer " +
                      layer_op_name(m.fixed.layers().at(layer).op) + "d already");
    }
    if (m.layers[size_t(layer)].block_dropped || (lp && lp->op == LayerOp::kDropBlock)) continue;  // BlockDrop: the residual passes
    const Layer& L = m.resident_layer(layer);
    const at::Tensor normed = m.rms_norm(h, L.input_norm);
    h = h + (s.latent_attention ? m.latent_attention(L, normed, additive, cos, sin) : m.attention(L, normed, additive, cos, sin));
    if (!L.dropped && !(lp && lp->op == LayerOp::kDrop)) {
      h = h + m.feed_forward(L, layer, m.rms_norm(h, L.post_norm), lp, flat_valid);
    }
  }
  return h;
}

at::Tensor MoeModel::head(const at::Tensor& hidden) const {
  return at::linear(impl_->rms_norm(hidden, impl_->final_norm), impl_->lm_head).to(at::kFloat);
}

at::Tensor MoeModel::final_norm(const at::Tensor& hidden) const { return impl_->rms_norm(hidden, impl_->final_norm); }

const at::Tensor& MoeModel::lm_head_weight() const { return impl_->lm_head; }

// ---- Attention ----

// In float32 whatever the compute dtype, then back to it before the weight (as transformers).
at::Tensor MoeModel::Impl::rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) const {
  at::Tensor wide = x.to(at::kFloat);
  return weight * (wide * at::rsqrt(wide.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

at::Tensor MoeModel::Impl::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  return rms_norm(x, weight, config.rms_norm_eps);
}

at::Tensor MoeModel::Impl::attention(const Layer& L, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& cos,
                     const at::Tensor& sin) const {
  const ModelShape& s = config.shape;
  int64_t B = x.size(0), T = x.size(1), H = s.num_attention_heads, KV = s.num_key_value_heads, d = s.head_dim;
  at::Tensor q = at::linear(x, L.q, L.q_bias), k = at::linear(x, L.k, L.k_bias), v = at::linear(x, L.v, L.v_bias);
  if (s.qk_norm == QkNorm::kWholeProjection) q = rms_norm(q, L.q_norm), k = rms_norm(k, L.k_norm);  // OLMoE
  if (s.clip_qkv > 0) {
    q = q.clamp(-s.clip_qkv, s.clip_qkv), k = k.clamp(-s.clip_qkv, s.clip_qkv), v = v.clamp(-s.clip_qkv, s.clip_qkv);
  }
  q = q.view({B, T, H, d}), k = k.view({B, T, KV, d});
  if (s.qk_norm == QkNorm::kPerHead) q = rms_norm(q, L.q_norm), k = rms_norm(k, L.k_norm);  // Qwen3-MoE
  q = q.transpose(1, 2);                                                             // [B, H, T, d]
  k = k.transpose(1, 2);                                                             // [B, KV, T, d]
  v = v.view({B, T, KV, d}).transpose(1, 2);
  const int64_t r = s.rope_dim();
  auto rope = [&](const at::Tensor& t) {  // the first r dims rotate, the rest pass (partial rotary)
    if (r == d) return t * cos + rotate_half(t) * sin;
    at::Tensor rotated = t.narrow(-1, 0, r);
    return at::cat({rotated * cos + rotate_half(rotated) * sin, t.narrow(-1, r, d - r)}, -1);
  };
  q = rope(q);
  k = rope(k);
  if (KV != H) {
    k = k.repeat_interleave(H / KV, 1);
    v = v.repeat_interleave(H / KV, 1);
  }
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(d)) + mask;  // [B, H, T, T]
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());      // float32 softmax
  at::Tensor out = at::matmul(probs, v);                                                 // [B, H, T, d]
  return at::linear(out.transpose(1, 2).reshape({B, T, H * d}), L.o, L.o_bias);
}

// DeepSeek-V2/V3's multi-head latent attention, as transformers' DeepseekV3Attention computes
// it: queries (optionally through the q_a/q_b pair), keys and values from one latent, RoPE on the
// rope part only (its pairs de-interleaved first when rope_interleave), one rope key for all heads.
at::Tensor MoeModel::Impl::latent_attention(const Layer& L, const at::Tensor& x, const at::Tensor& mask,
                                            const at::Tensor& cos, const at::Tensor& sin) const {
  const ModelShape& s = config.shape;
  const LatentAttention& a = s.latent;
  const int64_t B = x.size(0), T = x.size(1), H = s.num_attention_heads;
  const int64_t nope = a.qk_nope_head_dim, rope = a.qk_rope_head_dim, vd = a.v_head_dim;
  // The latent norms are DeepseekV3RMSNorm at its default epsilon, not config.rms_norm_eps.
  constexpr double kLatentNormEps = 1e-6;
  at::Tensor q = a.q_lora_rank ? at::linear(rms_norm(at::linear(x, L.q_a, L.q_a_bias), L.q_a_norm, kLatentNormEps), L.q_b)
                               : at::linear(x, L.q);
  q = q.view({B, T, H, nope + rope}).transpose(1, 2);                                // [B, H, T, nope + rope]
  at::Tensor latent = at::linear(x, L.kv_a, L.kv_a_bias);                            // [B, T, r + rope]
  at::Tensor kv = at::linear(rms_norm(latent.narrow(-1, 0, a.kv_lora_rank), L.kv_a_norm, kLatentNormEps), L.kv_b)
                      .view({B, T, H, nope + vd}).transpose(1, 2);                   // [B, H, T, nope + v]
  at::Tensor q_rot = q.narrow(-1, nope, rope);
  at::Tensor k_rot = latent.narrow(-1, a.kv_lora_rank, rope).reshape({B, 1, T, rope});
  if (a.rope_interleave) {  // (x0, x1, x2, x3, ...) -> (x0, x2, ..., x1, x3, ...)
    q_rot = q_rot.reshape({B, H, T, rope / 2, 2}).transpose(4, 3).reshape({B, H, T, rope});
    k_rot = k_rot.reshape({B, 1, T, rope / 2, 2}).transpose(4, 3).reshape({B, 1, T, rope});
  }
  q_rot = q_rot * cos + rotate_half(q_rot) * sin;
  k_rot = k_rot * cos + rotate_half(k_rot) * sin;
  at::Tensor query = at::cat({q.narrow(-1, 0, nope), q_rot}, -1);
  at::Tensor key = at::cat({kv.narrow(-1, 0, nope), k_rot.expand({B, H, T, rope})}, -1);
  // YaRN with mscale_all_dim scales the softmax too (DeepseekV3Attention's scaling).
  at::Tensor scores = at::matmul(query, key.transpose(-1, -2)) / std::sqrt(double(nope + rope));
  if (config.yarn.softmax_scale() != 1.0) scores = scores * config.yarn.softmax_scale();
  scores = scores + mask;
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());
  at::Tensor out = at::matmul(probs, kv.narrow(-1, nope, vd));                      // [B, H, T, v]
  return at::linear(out.transpose(1, 2).reshape({B, T, H * vd}), L.o, L.o_bias);
}

// RoPE's inverse frequencies [d/2] in float32, YaRN's blend of interpolated and extrapolated
// frequencies as transformers' _compute_yarn_parameters computes them.
at::Tensor MoeModel::Impl::rope_inverse_frequencies(const at::TensorOptions& floats) const {
  const int64_t dim = config.shape.rope_dim();
  const double d = double(dim), base = config.rope_theta;
  at::Tensor pos_freqs = at::pow(base, at::arange(0, dim, 2, floats) / d);
  if (!config.yarn.on) return 1.0 / pos_freqs;
  const ModelConfig::Yarn& y = config.yarn;
  auto correction_dim = [&](double rotations) {
    return d * std::log(y.original_max_positions / (rotations * 2 * M_PI)) / (2 * std::log(base));
  };
  double low = correction_dim(y.beta_fast), high = correction_dim(y.beta_slow);
  if (y.truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0), high = std::min(high, d - 1);
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
  at::Tensor ramp = ((at::arange(dim / 2, floats) - low) / (high - low)).clamp(0, 1);
  at::Tensor extrapolation = 1 - ramp;  // the share of each frequency left unscaled
  return (1.0 / (y.frequency_factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation;
}

// ---- Feed-forward: the dense MLP or the MoE block ----

at::Tensor MoeModel::Impl::feed_forward(const Layer& L, int layer, const at::Tensor& x, const LayerPlan* lp,
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

at::Tensor MoeModel::Impl::shared_part(const Moe& M, const at::Tensor& x, int layer, const at::Tensor& valid, bool record) const {
  if (!M.shared.defined()) return at::zeros_like(x);
  at::Tensor y = M.shared(x);
  if (!family().shared_expert_gate) return y;
  at::Tensor gate = at::sigmoid(at::linear(x, M.shared_gate));                // [N, 1]
  if (record) {
    RouterStats::Layer& entry = stats.layers[layer];
    entry.shared_gate_sum += gate.squeeze(1).masked_select(valid).to(at::kDouble).sum().item<double>();
    entry.token_count += double(valid.sum().item<int64_t>());
  }
  return gate * y;
}

// ---- Routing: which experts each token goes to, by router kind ----

MoeModel::Impl::Routing MoeModel::Impl::route(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const {
  // The router in float32 whatever the compute dtype (DeepSeek's gates do; Qwen, Mixtral and
  // OLMoE compute their logits in the model dtype and only the softmax in float32).
  switch (config.shape.router) {
    case RouterKind::kSoftmax: return route_softmax(M, x, candidates);
    case RouterKind::kSoftmaxGroups: return route_softmax_groups(M, x, candidates);
    case RouterKind::kSigmoidGroups: return route_sigmoid_groups(M, x, candidates);
  }
  throw std::logic_error("unknown router kind");
}

// Softmax over the (kept) experts, top-min(k, kept), the family's normalisation, the scaling.
MoeModel::Impl::Routing MoeModel::Impl::route_softmax(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const {
  const ModelShape& s = config.shape;
  at::Tensor router = candidates.defined() ? M.router.index_select(0, candidates) : M.router;
  at::Tensor probs = at::softmax(at::linear(x.to(at::kFloat), router.to(at::kFloat)), -1);  // [N, E']
  int64_t k = std::min<int64_t>(s.experts_per_token, probs.size(1));
  auto [top_weight, top_index] = probs.topk(k, -1);                                          // [N, k]
  if (s.norm_topk_prob && k >= family().topk_norm_min_k) {
    top_weight = top_weight / (top_weight.sum(-1, true) + family().topk_norm_epsilon);
  }
  if (candidates.defined()) top_index = candidates.index_select(0, top_index.flatten()).view(top_index.sizes());
  return {top_index, top_weight * s.routed_scaling_factor, probs};
}

// DeepSeek-V2's group_limited_greedy. Pruned: the softmax over the kept experts, which keep their
// groups; a group's score is its largest kept probability (a group keeping none is never
// chosen); the unchosen groups' experts score 0 as transformers masks them, and the top-min(k,
// kept) scores are the weights, times the scaling (never normalised).
MoeModel::Impl::Routing MoeModel::Impl::route_softmax_groups(const Moe& M, const at::Tensor& x,
                                                             const at::Tensor& candidates) const {
  const ModelShape& s = config.shape;
  const int64_t E = M.router.size(0), G = s.n_group, N = x.size(0);
  at::Tensor router = candidates.defined() ? M.router.index_select(0, candidates) : M.router;
  at::Tensor kept_probs = at::softmax(at::linear(x.to(at::kFloat), router.to(at::kFloat)), -1);  // [N, E']
  at::Tensor probs = candidates.defined()
                         ? at::full({N, E}, kMinusInfinity, kept_probs.options()).index_copy_(1, candidates, kept_probs)
                         : kept_probs;                                                        // [N, E], -inf: pruned
  at::Tensor group_score = std::get<0>(probs.view({N, G, E / G}).max(-1));                   // [N, G]
  at::Tensor chosen = std::get<1>(group_score.topk(std::min<int64_t>(s.topk_group, G), -1));
  at::Tensor for_choice = probs.masked_fill(experts_of_groups(chosen, G, E).logical_not(), 0.0)
                              .masked_fill(kept_mask(E, candidates, probs.options()).logical_not(), kMinusInfinity);
  const int64_t k = std::min<int64_t>(s.experts_per_token, kept_probs.size(1));
  auto [top_weight, top_index] = for_choice.topk(k, -1);
  return {top_index, top_weight * s.routed_scaling_factor, kept_probs};
}

// DeepSeek-V3's noaux_tc. Pruned: the kept experts keep their groups; a group's score is the sum
// of its top-2 kept choice scores (one when it keeps one), a group keeping none is never chosen;
// top-min(k, kept) among the chosen groups' kept experts, the unchosen groups' scores set to 0
// as transformers masks them; the weights are the sigmoid scores (without the bias).
MoeModel::Impl::Routing MoeModel::Impl::route_sigmoid_groups(const Moe& M, const at::Tensor& x,
                                                             const at::Tensor& candidates) const {
  const ModelShape& s = config.shape;
  const int64_t E = M.router.size(0), G = s.n_group, per_group = E / G, N = x.size(0);
  at::Tensor scores = at::sigmoid(at::linear(x.to(at::kFloat), M.router.to(at::kFloat)));   // [N, E]
  at::Tensor choice = scores + M.router_bias;
  at::Tensor kept = kept_mask(E, candidates, scores.options());
  at::Tensor kept_choice = choice.masked_fill(kept.logical_not(), kMinusInfinity);
  // Top-2 per group (an exported pruned layer may leave groups of one).
  at::Tensor top2 = std::get<0>(kept_choice.view({N, G, per_group}).topk(std::min<int64_t>(2, per_group), -1));
  at::Tensor finite = at::isfinite(top2);
  at::Tensor group_score = at::where(finite, top2, at::zeros_like(top2)).sum(-1);
  group_score = group_score.masked_fill(finite.any(-1).logical_not(), kMinusInfinity);        // no kept expert
  at::Tensor chosen = std::get<1>(group_score.topk(std::min<int64_t>(s.topk_group, G), -1));
  at::Tensor for_choice =
      choice.masked_fill(experts_of_groups(chosen, G, E).logical_not(), 0.0).masked_fill(kept.logical_not(), kMinusInfinity);
  const int64_t k = std::min<int64_t>(s.experts_per_token, candidates.defined() ? candidates.numel() : E);
  at::Tensor top_index = std::get<1>(for_choice.topk(k, -1));
  at::Tensor top_weight = scores.gather(1, top_index);
  if (s.norm_topk_prob) top_weight = top_weight / (top_weight.sum(-1, true) + family().topk_norm_epsilon);
  at::Tensor kept_scores = candidates.defined() ? scores.index_select(1, candidates) : scores;
  return {top_index, top_weight * s.routed_scaling_factor, kept_scores / kept_scores.sum(-1, true)};
}

// ---- The routed experts ----

// Routed experts for the tokens of x [N, D]: routing among `candidates` (all experts, or a
// pruned set), recorded for router statistics and the balance loss when those are on, then the
// experts' dispatch.
at::Tensor MoeModel::Impl::routed(const Moe& M, const at::Tensor& x, const at::Tensor& candidates, int layer,
                  const at::Tensor& valid) const {
  const Routing routing = route(M, x, candidates);
  if (collecting && !candidates.defined()) record_routing(layer, routing.index, routing.weight, valid);
  if (balancing && !candidates.defined()) add_balance_loss(routing.distribution, routing.index, valid);
  return run_experts(M, x, routing);
}

// Σ_k weight · expert(x) per token, grouped by expert so each expert runs one GEMM over its tokens.
at::Tensor MoeModel::Impl::run_experts(const Moe& M, const at::Tensor& x, const Routing& routing) const {
  const at::Tensor& top_index = routing.index;
  const at::Tensor& top_weight = routing.weight;
  const int64_t k = top_index.size(1);
  int64_t N = x.size(0);
  at::Tensor flat_expert = top_index.flatten();                                // [N·k]
  at::Tensor order = flat_expert.argsort();
  at::Tensor token_of = at::arange(N, x.options().dtype(at::kLong)).repeat_interleave(k).index_select(0, order);
  at::Tensor weight_of = top_weight.flatten().index_select(0, order).to(x.scalar_type());
  const int64_t experts = M.router.size(0);  // fewer than E in an exported pruned layer
  at::Tensor counts = at::bincount(flat_expert, {}, experts).cpu();  // the loop bounds, on the host
  std::vector<int64_t> sizes(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + experts);
  // One gather of every (token, expert) pair sorted by expert, split into per-expert views, and
  // one scatter back. When gradients flow, the split is split_with_sizes, whose backward is one
  // cat, where a gather or a narrow per expert would each add a full-size zero gradient (E× the
  // activation traffic when training).
  // Likewise, when the experts train, one view per expert is taken with unbind: its backward
  // stacks the experts' gradients into one [E, ...] tensor. Without gradients, plain narrowing
  // and indexing (libtorch 1.13's lazy tensors have neither split nor unbind of their own).
  at::Tensor gathered = x.index_select(0, token_of);                           // [N·k, D]
  std::vector<at::Tensor> inputs, gate, up, down;
  if (at::GradMode::is_enabled() && (x.requires_grad() || M.expert_gate.requires_grad())) {
    inputs = gathered.split_with_sizes(sizes);
  } else {
    int64_t offset = 0;
    for (int64_t size : sizes) {
      inputs.push_back(gathered.narrow(0, offset, size));
      offset += size;
    }
  }
  if (M.expert_gate.requires_grad()) gate = M.expert_gate.unbind(0), up = M.expert_up.unbind(0), down = M.expert_down.unbind(0);
  auto expert = [](const at::Tensor& stacked, const std::vector<at::Tensor>& views, int64_t e) {
    return views.empty() ? stacked[e] : views[size_t(e)];
  };
  std::vector<at::Tensor> outputs;
  for (int64_t e = 0; e < experts; ++e) {
    if (sizes[size_t(e)] == 0) continue;
    const at::Tensor& xe = inputs[size_t(e)];                                  // [n_e, D]
    at::Tensor h = at::silu(at::linear(xe, expert(M.expert_gate, gate, e))) * at::linear(xe, expert(M.expert_up, up, e));
    outputs.push_back(at::linear(h, expert(M.expert_down, down, e)));
  }
  if (outputs.empty()) return at::zeros_like(x);                               // no tokens
  at::Tensor weighted = at::cat(outputs) * weight_of.unsqueeze(1);             // [N·k, D], sorted by expert
  return at::zeros_like(x).index_add_(0, token_of, weighted);
}

void MoeModel::Impl::add_balance_loss(const at::Tensor& probs, const at::Tensor& top_index, const at::Tensor& valid) const {
  const int64_t E = probs.size(1), k = top_index.size(1);
  at::Tensor kept = valid.nonzero().squeeze(1);
  if (kept.numel() == 0) return;
  at::Tensor mean_probability = probs.index_select(0, kept).mean(0);                            // P_e
  at::Tensor routed_to = at::bincount(top_index.index_select(0, kept).flatten(), {}, E).to(at::kFloat);
  at::Tensor fraction = routed_to * (double(E) / double(k * kept.numel()));                    // f_e
  at::Tensor term = (fraction.detach() * mean_probability).sum();
  balance_loss = balance_loss.defined() ? balance_loss + term : term;
}

void MoeModel::Impl::record_routing(int layer, const at::Tensor& top_index, const at::Tensor& top_weight, const at::Tensor& valid) const {
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

}  // namespace cdmoe::model
