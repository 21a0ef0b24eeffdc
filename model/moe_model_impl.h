// MoeModel's private state, shared by the files that implement it along its seams:
//   moe_model.cc   accessors, dtypes, router statistics
//   moe_weights.cc loading the weights by the family's names (model/weight_names.h), and
//                  reading layers in and out under Residency::kLayers
//   moe_forward.cc the forward: attention, router, experts, layers
//   plan_ops.cc    plan operations on an MoE block: the condensed (fused dense) MLP
//   moe_export.cc  the tensors of a materialised plan, by the same names
// Included by those files only. Shapes: B batch, T tokens, N = B·T flattened tokens, D hidden,
// H/KV heads, d head dim, E routed experts, k router top-k, I expert inner size.
#pragma once

#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "model/checkpoint.h"
#include "model/moe_model.h"
#include "model/weight_names.h"

namespace cdmoe::model {

struct Mlp {  // SwiGLU: down(silu(gate x) * up x)
  at::Tensor gate, up, down;
  bool defined() const { return gate.defined(); }
  at::Tensor operator()(const at::Tensor& x) const {
    return at::linear(at::silu(at::linear(x, gate)) * at::linear(x, up), down);
  }
};

struct Moe {
  at::Tensor router;                                // [E, D]
  at::Tensor router_bias;                           // [E] float32, RouterKind::kSigmoidGroups
  at::Tensor expert_gate, expert_up, expert_down;   // [E, I, D], [E, I, D], [E, D, I]
  Mlp shared;                                       // undefined when the family/config has none
  at::Tensor shared_gate;                           // [1, D], families with a shared-expert gate
};

struct Layer {
  at::Tensor input_norm, post_norm;
  at::Tensor q, k, v, o, q_bias, k_bias, v_bias, o_bias;
  at::Tensor q_norm, k_norm;   // ModelShape::qk_norm: [d] per head, or [H·d] / [KV·d] whole
  at::Tensor q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, q_a_bias, kv_a_bias;  // latent attention
  bool is_moe = false;
  bool dropped = false;        // an exported checkpoint's dropped layer: attention only
  bool block_dropped = false;  // an exported checkpoint's drop_block layer: no weights at all
  Mlp dense;
  Moe moe;
};

// Where a layer holds the tensor of `role` (core/tensor_table.h): norms, attention, the dense
// (or exported condensed) MLP, router, router bias, shared experts and their gate. nullptr for
// the routed experts, which a layer holds stacked (Moe::expert_*), and for the roles outside a
// layer. Load, export and training walk the table through it.
template <class LayerT>
auto tensor_slot(LayerT& L, TensorRole role) -> decltype(&L.q) {
  using R = TensorRole;
  switch (role) {
    case R::kInputNorm: return &L.input_norm;
    case R::kPostNorm: return &L.post_norm;
    case R::kQ: return &L.q;
    case R::kK: return &L.k;
    case R::kV: return &L.v;
    case R::kO: return &L.o;
    case R::kQBias: return &L.q_bias;
    case R::kKBias: return &L.k_bias;
    case R::kVBias: return &L.v_bias;
    case R::kOBias: return &L.o_bias;
    case R::kQNorm: return &L.q_norm;
    case R::kKNorm: return &L.k_norm;
    case R::kQA: return &L.q_a;
    case R::kQABias: return &L.q_a_bias;
    case R::kQANorm: return &L.q_a_norm;
    case R::kQB: return &L.q_b;
    case R::kKvA: return &L.kv_a;
    case R::kKvABias: return &L.kv_a_bias;
    case R::kKvANorm: return &L.kv_a_norm;
    case R::kKvB: return &L.kv_b;
    case R::kMlpGate: return &L.dense.gate;
    case R::kMlpUp: return &L.dense.up;
    case R::kMlpDown: return &L.dense.down;
    case R::kRouter: return &L.moe.router;
    case R::kRouterBias: return &L.moe.router_bias;
    case R::kSharedGate: return &L.moe.shared.gate;
    case R::kSharedUp: return &L.moe.shared.up;
    case R::kSharedDown: return &L.moe.shared.down;
    case R::kSharedExpertGate: return &L.moe.shared_gate;
    default: return nullptr;
  }
}

struct MoeModel::Impl {
  ModelConfig config;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // weights and activations
  at::TensorOptions weight_options() const { return at::TensorOptions().dtype(dtype).device(device); }
  const Family& family() const { return *config.family; }
  Plan fixed;  // an exported checkpoint's plan
  at::Tensor embed_tokens, final_norm, lm_head;
  // The decoder layers. Under Residency::kLayers a layer holds its tensors only while resident
  // (its flags always); reading one in is a cache fill, hence mutable. Code that computes with a
  // layer's tensors gets the layer from resident_layer().
  mutable std::vector<Layer> layers;
  // Residency (moe_weights.cc).
  Residency residency = Residency::kFull;
  std::unique_ptr<Checkpoint> checkpoint;  // kLayers: where layers are read from
  std::vector<TensorEntry> table;          // kLayers: the checkpoint's tensor table
  size_t resident_cap = 1;                 // kLayers: unpinned layers held at once
  mutable std::list<int> resident;         // kLayers: layers holding tensors, most recently used first
  mutable std::set<int> pinned;            // kLayers: layers whose tensors were handed out: never dropped
  mutable ResidencyStats residency_counts;
  // Layer `index` with its tensors, read now under kLayers when it is not resident (dropping the
  // least recently used unpinned layer past resident_cap). The reference stays valid; another
  // layer's read may empty it, so callers take what they need from one layer at a time.
  const Layer& resident_layer(int index) const;
  // The same, held until the model goes: its tensors were handed out (training handles).
  const Layer& pinned_layer(int index) const;
  // Under kLayers, whether a materialised tensor of `layer` under `lp` is read from the
  // checkpoint by itself rather than through its layer: the layer is not resident, the plan
  // leaves it as it is (its tensors are the checkpoint's, by the same names) and the experts
  // are stored one by one. read_tensor reads it (in the compute dtype; a router bias in float32).
  bool reads_tensor_alone(int layer, const LayerPlan* lp) const;
  at::Tensor read_tensor(const std::string& name, const TensorEntry& entry) const;
  // Reads `entries` of the checkpoint `source` into their places in the compute dtype; returns
  // the bytes they hold.
  int64_t read_tensors(const Checkpoint& source, const std::vector<TensorEntry>& entries);
  // The condensed-layer cache (plan_ops.cc), key: layer + canonical layer plan with weights.
  // Bounded by condensed_cap bytes: inserting evicts the least recently used entries that the
  // running forward has not used and that no trainer holds (pinned); past that it exceeds the
  // cap rather than fail the forward.
  struct CachedMlp {
    Mlp mlp;
    int64_t bytes = 0;
    int64_t last_use = 0;  // forward_clock when last used
    bool pinned = false;   // handed out by condensed_parameters() (training): never evicted
  };
  mutable std::map<std::string, CachedMlp> condensed_cache;
  mutable int64_t condensed_bytes = 0;
  int64_t condensed_cap = std::numeric_limits<int64_t>::max();
  mutable int64_t forward_clock = 0;  // run_layers calls so far
  mutable int64_t condensed_evicted = 0;
  bool collecting = false;
  mutable RouterStats stats;
  bool balancing = false;
  mutable at::Tensor balance_loss;  // undefined until a routed forward adds to it

  // moe_forward.cc
  at::Tensor rope_inverse_frequencies(const at::TensorOptions& floats) const;  // [head_dim / 2]
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;  // config's rms_norm_eps
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) const;
  at::Tensor attention(const Layer& L, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& cos,
                       const at::Tensor& sin) const;
  at::Tensor latent_attention(const Layer& L, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& cos,
                              const at::Tensor& sin) const;
  // The routed experts each token of x [N, D] goes to (indices into all E experts) and their
  // multipliers, by the family's router kind, restricted to `candidates` when defined (prune),
  // with the per-token distribution over experts the balance loss uses.
  struct Routing {
    at::Tensor index, weight;  // [N, k]
    at::Tensor distribution;   // [N, E or candidates]
  };
  Routing route(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const;
  Routing route_softmax(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const;
  Routing route_softmax_groups(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const;
  Routing route_sigmoid_groups(const Moe& M, const at::Tensor& x, const at::Tensor& candidates) const;
  at::Tensor routed(const Moe& M, const at::Tensor& x, const at::Tensor& candidates, int layer,
                    const at::Tensor& valid) const;
  at::Tensor run_experts(const Moe& M, const at::Tensor& x, const Routing& routing) const;
  void add_balance_loss(const at::Tensor& probs, const at::Tensor& top_index, const at::Tensor& valid) const;
  void record_routing(int layer, const at::Tensor& top_index, const at::Tensor& top_weight, const at::Tensor& valid) const;
  at::Tensor shared_part(const Moe& M, const at::Tensor& x, int layer, const at::Tensor& valid, bool record) const;
  at::Tensor feed_forward(const Layer& L, int layer, const at::Tensor& x, const LayerPlan* lp, const at::Tensor& valid) const;
  // plan_ops.cc
  const Mlp& condensed(const Moe& M, int layer, const LayerPlan& lp) const;
  void evict_condensed_for(int64_t bytes) const;  // makes room under condensed_cap, as it may
  struct ResolvedCondense {
    std::string key;
    std::vector<double> weights;
    double shared_weight = 1;
  };
  ResolvedCondense resolve_condense(int layer, const LayerPlan& lp) const;  // needs router stats for implicit weights
  // One projection (kMlpGate, kMlpUp or kMlpDown) of the condensed MLP: the cached one (a
  // trainer's, say) when there is one, without reading the layer; else built alone from the
  // layer and not cached (what an exporter asks: its memory stays one projection, however many
  // layers it condenses).
  at::Tensor condensed_part(int layer, const LayerPlan& lp, TensorRole role) const;
  // The condensed MLP built from the layer's experts: every projection, or only `only`'s.
  Mlp fuse(const Moe& M, const LayerPlan& lp, const ResolvedCondense& resolved, std::optional<TensorRole> only) const;
};

}  // namespace cdmoe::model
