// MoeModel: a decoder-only MoE transformer of a registered family, loaded once from a Hugging
// Face directory and run as transformers runs it, with any Plan (ARCHITECTURE.md §7) applied.
// Compute is on the device the model is loaded to (CPU, or a CUDA device in a build whose libtorch
// has CUDA), in its compute dtype: float32, or bfloat16 (weights and activations; norms,
// softmaxes, RoPE tables and the router in float32, as transformers does; logits() and head()
// return float32). Inputs may live anywhere and are moved there; every output tensor lives
// there. Shapes: B batch, T tokens, D hidden, V vocabulary.
// Masks are [B, T] int/bool (1 = token, 0 = padding) or undefined (no padding); positions are
// 0..T-1 as in a plain transformers forward call.
// Not thread-safe (the condensed-layer cache and router statistics are mutable); one worker
// thread owns a model.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/messages.h"
#include "core/plan.h"
#include "model/model_config.h"
#include "model/residency.h"

namespace cdmoe::model {

// Per MoE layer, over the valid tokens of every forward while collecting: how many tokens the
// router sent to each expert and the sum of their gate weights (w̄_e = weight_sum / tokens),
// and for qwen2_moe the sum of sigmoid(shared_expert_gate(x)).
struct RouterStats {
  struct Layer {
    std::vector<double> tokens;
    std::vector<double> weight_sum;
    double shared_gate_sum = 0;
    double token_count = 0;
  };
  std::map<int, Layer> layers;

  double average_weight(int layer, int expert) const;  // 0 for an expert never routed to
  double average_shared_gate(int layer) const;         // 1 when not measured (deepseek)

  // As rows (core/messages.h; a sweep's router_stats table): per layer every routed expert,
  // then expert -1 (the shared gate's mean over token_count tokens) where it was measured.
  std::vector<ExpertRouting> to_rows() const;
  // The inverse; `where` names the source in errors (an expert index past the model's).
  static RouterStats from_rows(const std::vector<ExpertRouting>& rows, const ModelShape& shape, const std::string& where);
};

class MoeModel {
 public:
  // Reads config.json and the safetensors weights; checks every tensor's name and shape; copies
  // each weight from the mapped file straight to `device`, converted to the compute dtype
  // (model/residency.h: every layer now under kFull, each layer when it is used under kLayers,
  // the least recently used going first past `resident_layers`, except the layers whose
  // tensors were handed out by parameters() or moe_block_parameters(), which stay). Both read
  // the same bytes the same way, so every result is the same bit for bit; kLayers reads a
  // layer again each time it comes back.
  static std::unique_ptr<MoeModel> load(const std::string& dir, const at::Device& device = at::kCPU,
                                        at::ScalarType dtype = at::kFloat, Residency residency = Residency::kFull,
                                        int resident_layers = 1);
  ~MoeModel();

  const ModelConfig& config() const;
  const ModelShape& shape() const { return config().shape; }
  const at::Device& device() const;
  at::ScalarType dtype() const;  // the compute dtype

  at::Tensor embed(const at::Tensor& ids) const;  // [B, T] int64 -> [B, T, D]
  // Decoder layers [from, to) under `plan` (validated against the shape).
  at::Tensor run_layers(const at::Tensor& hidden, const at::Tensor& mask, int from, int to, const Plan& plan) const;
  // The same for rows that pack several sequences sharing a prefix (eval/loglikelihood.cc):
  // `visible` [B, T, T] bool says which keys each query attends to, `positions` [B, T] int64
  // each token's position (RoPE), `valid` [B, T] bool which slots hold a token (router
  // statistics). A token that sees what it would see in its own sequence, at the same position,
  // gets the same hidden state as there.
  struct TokenLayout {
    at::Tensor visible, positions, valid;
  };
  at::Tensor run_layers(const at::Tensor& hidden, const TokenLayout& layout, int from, int to, const Plan& plan) const;
  at::Tensor head(const at::Tensor& hidden) const;  // final norm + LM head: [B, T, D] -> [B, T, V]
  at::Tensor final_norm(const at::Tensor& hidden) const;  // the first half of head()
  const at::Tensor& lm_head_weight() const;                // [V, D], the second half
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& mask, const Plan& plan) const;

  // The tensors the model holds when materialised under `plan`, by Hugging Face name: a
  // condensed layer as one dense MLP (mlp.{gate,up,down}_proj), a pruned layer's router rows
  // and experts renumbered 0..r-1, a dropped layer without MLP and post-attention norm, a
  // drop_block layer without any tensor. What
  // cdmoe-export writes; their element count equals core's count_parameters for the plan.
  // They live on device(); a writer copies them to the host.
  std::vector<std::pair<std::string, at::Tensor>> materialise(const Plan& plan) const;
  // The same tensors with their tensor-table entry (role, layer, shape) and expert number (-1
  // for a tensor that is not one routed expert's): what a re-expression in another family's
  // layout maps from (model/stock_export.h).
  struct Materialised {
    TensorEntry entry;
    int64_t expert = -1;
    std::string name;
    at::Tensor tensor;
  };
  std::vector<Materialised> materialise_entries(const Plan& plan) const;
  // The same entries in the same order with no tensor computed (`tensor` undefined): what a
  // writer lays out before it reads any weight. Checks the plan as materialise_entries does,
  // the condense weights it needs included.
  std::vector<Materialised> materialise_layout(const Plan& plan) const;
  // One entry's tensor (its layer read first under Residency::kLayers; checked against the
  // entry's shape). materialise_entries is the layout with each of these filled in.
  at::Tensor materialised_tensor(const Plan& plan, const Materialised& what) const;
  // The plan an exported checkpoint was made with (its config.json "cdmoe" block): those
  // layers are fixed and a further plan may not touch them. Empty for an original checkpoint.
  const Plan& fixed_plan() const;

  // The pieces a condense op of MoE layer `layer` combines, for the calibration rows `hidden`
  // [B, T, D] entering the layer (eval/layer_cache.h: expert selection as a weighted sum):
  // the layer's output under condense(K, w, s) is residual + s·shared + Σ_{e∈K} w_e·experts[e],
  // equal to run_layers(hidden, mask, layer, layer + 1, plan) up to floating-point summation order.
  struct MoeParts {
    at::Tensor residual;  // [B, T, D] the hidden state after attention
    at::Tensor shared;    // [B, T, D] the shared expert(s) output, ungated and unweighted (zeros when none)
    at::Tensor experts;   // [E, B, T, D] every routed expert's output on every token, unweighted
  };
  MoeParts moe_parts(const at::Tensor& hidden, const at::Tensor& mask, int layer) const;
  // The weights a condense op applies (its own, or the router statistics' defaults): one per kept
  // expert, in lp.experts order, and the shared experts' weight. Bad input as run_layers would.
  struct CondenseWeights {
    std::vector<double> experts;
    double shared = 1;
  };
  CondenseWeights condense_weights(int layer, const LayerPlan& lp) const;

  // Training access (finetune/). The handles share storage with the model: setting
  // requires_grad on them, or updating them in place, changes what every later forward computes.
  // Names are the Hugging Face names materialise() writes; stacked routed experts appear as
  // "model.layers.L.<block>experts.{gate,up,down}_proj.weight" ([E, ...], one tensor per kind;
  // <block> is the family's MoE block name, "mlp." or Mixtral's "block_sparse_moe.").
  // parameters(): every tensor of the model as held (a tied embedding once).
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  // The parameters of original MoE layer `layer`'s block (router, experts, shared experts and
  // gate): what --train blocks trains. Empty for a dense or exported non-MoE layer.
  std::vector<std::pair<std::string, at::Tensor>> moe_block_parameters(int layer) const;
  // The fused dense MLP of each condensed layer of `plan` (built now if not cached): what
  // condensed-only fine-tuning trains. Its frozen sources (the experts) are not touched.
  std::vector<std::pair<std::string, at::Tensor>> condensed_parameters(const Plan& plan) const;
  // Drops the cached fused MLPs of `plan`'s condensed layers: the next forward rebuilds them
  // from the original experts (how a worker forgets a fine-tune it has evaluated).
  void forget_condensed(const Plan& plan);
  // Bounds the condensed-layer cache (one fused MLP per distinct (layer, experts, weights) run):
  // past `bytes`, the least recently used fused MLPs go, except those the running forward uses
  // and those condensed_parameters() handed out (until forget_condensed). Unbounded by default.
  void limit_condensed_cache(int64_t bytes);
  struct CondensedCacheStats {
    int64_t bytes = 0, entries = 0, evicted = 0;
  };
  CondensedCacheStats condensed_cache_stats() const;

  Residency residency() const;
  // Decoder layers read from the checkpoint since load (each layer once under kFull), the
  // bytes they hold in the compute dtype, and the layers held now.
  struct ResidencyStats {
    int64_t layer_reads = 0, bytes_read = 0, resident = 0;
  };
  ResidencyStats residency_stats() const;

  // DeepSeekMoE's expert-level balance loss, Σ_layers Σ_e f_e·P_e (f_e: the fraction of valid
  // tokens routed to e times E/k, without gradient; P_e: the mean router probability), summed
  // over the original MoE layers of every forward while on. take_balance_loss() returns the sum
  // since the last take (a 0-dim float32 tensor with the graph, zero when nothing was routed).
  void collect_balance_loss(bool on);
  at::Tensor take_balance_loss();

  // Router statistics: collected by forwards of original MoE layers while on, or set from
  // stored ones (a sweep's router_stats table, for cdmoe-export); condense ops without weights
  // (or without shared_weight for qwen2_moe) take their defaults from them.
  void collect_router_stats(bool on);
  const RouterStats& router_stats() const;
  void set_router_stats(RouterStats stats);

 private:
  MoeModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "float32" or "bfloat16" (the --dtype names); anything else is bad input.
at::ScalarType compute_dtype_named(const std::string& name);
std::string compute_dtype_name(at::ScalarType dtype);  // the inverse

}  // namespace cdmoe::model
