// LayerCache: the calibration set's hidden states at layer boundaries under a base plan, kept
// per worker so a candidate that differs from the base only from layer l on runs from l
// (layer selection: l..L; expert selection, whose objective is local: layer l alone) instead
// of from the embeddings (ARCHITECTURE.md §2). Boundaries are computed on first use from the
// nearest earlier cached one and kept while they fit under the memory cap; past it they are
// recomputed (never evicted, so results do not depend on access order). Changing the base
// invalidates every boundary after the first layer whose operation changed.
// Results with and without the cache are identical (the same operations run either way).
// Expert selection as a weighted sum (§2): for a layer-scope candidate that condenses one layer
// the base leaves original, the cache keeps that layer's parts (model::MoeModel::MoeParts: the
// residual, the shared output and every routed expert's output on every calibration token,
// (E + 2)·B·T·D values) and a candidate costs a weighted sum, no GEMM. Parts share the memory
// cap with the boundaries: the least recently used layer's parts make room (also for a
// vocabulary reference, which every model-scope candidate needs); when one layer's parts do
// not fit beside the boundaries and references, the candidate takes the plain path. The two
// paths sum in a different order: values agree to float rounding (≤ 1e-6 relative in float32).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include <ATen/core/Tensor.h>

#include "core/objectives.h"
#include "core/plan.h"
#include "eval/divergence.h"
#include "model/moe_model.h"

namespace cdmoe::eval {

class LayerCache {
 public:
  // ids/mask [B, T] of the calibration set, kept on the model's device, as are the boundaries
  // (cap_bytes counts that device's memory); cap_bytes 0 turns caching off (--no-layer-cache).
  LayerCache(const model::MoeModel& model, at::Tensor ids, at::Tensor mask, Plan base, int64_t cap_bytes);

  void set_base(Plan base);
  const Plan& base() const { return base_; }
  const at::Tensor& mask() const { return mask_; }
  const model::MoeModel& model() const { return model_; }
  // How measure_objective averages over tokens (default: every valid token alike).
  void set_divergence_mean(DivergenceMean mean) { mean_ = mean; }
  DivergenceMean divergence_mean() const { return mean_; }
  // divergence_row_weights of the first `rows` sequences' mask under that mean.
  at::Tensor row_weights(int64_t rows) const;
  int num_layers() const { return int(model_.shape().num_layers); }

  // Hidden state entering `layer` (0..L; L is the last layer's output) under the base plan.
  at::Tensor boundary(int layer);
  // The last layer's output under `plan`, run from the first layer where it differs from the
  // base, for the first `rows` calibration sequences (-1: all). With `incumbent` (layer
  // selection: the plan this candidate extends), from the first layer where it differs from the
  // incumbent instead, whose boundaries are kept like the base's (a few incumbents, least
  // recently used dropped first; a boundary that does not fit is recomputed). The same
  // operations run either way: the result is bitwise the same.
  at::Tensor final_hidden(const Plan& plan, int64_t rows = -1, const Plan* incumbent = nullptr);
  // Layer `layer`'s output under `plan`, which may differ from the base at that layer only.
  at::Tensor layer_output(const Plan& plan, int layer, int64_t rows = -1);
  // First layer whose operation differs between the plans; num_layers() when none does.
  int first_difference(const Plan& a, const Plan& b) const;
  // The base's final output as the reference of a vocabulary divergence over the first `rows`
  // sequences (their valid tokens), built on first use and kept until the base changes; its
  // logits are kept while they fit under the cap with the boundaries (expert outputs make room).
  const VocabularyReference& vocabulary_reference(int64_t rows);
  // The reference side of a hidden-state divergence (eval/divergence.h) at boundary
  // `boundary_layer` (after the final norm when `final_norm`), its leading `rows` sequences:
  // prepared once and kept while it fits (expert outputs make room) until the base changes.
  at::Tensor hidden_reference(int boundary_layer, bool final_norm, int64_t rows, DivergenceKind kind);

  struct Stats {
    int64_t hits = 0, computed = 0, bytes = 0;  // bytes: boundaries, references and parts
    int64_t parts_hits = 0, parts_computed = 0, parts_evicted = 0, parts_bytes = 0;
    int64_t partial_sum_hits = 0;  // candidates that added one expert to a kept partial sum
    int64_t incumbent_hits = 0, incumbent_computed = 0, incumbent_bytes = 0;  // boundaries under incumbents
  };
  const Stats& stats() const { return stats_; }

 private:
  const model::MoeModel& model_;
  at::Tensor ids_, mask_;
  Plan base_;
  int64_t cap_bytes_;
  DivergenceMean mean_ = DivergenceMean::kToken;
  std::map<int, at::Tensor> boundaries_;
  std::map<int64_t, std::unique_ptr<VocabularyReference>> references_;  // by leading rows
  // The condensed layer from the parts, or undefined when `plan` is not a condense of a layer
  // the base leaves original or its parts do not fit.
  at::Tensor condensed_from_parts(const Plan& plan, int layer, int64_t rows);
  struct KeptParts {
    model::MoeModel::MoeParts parts;
    int64_t bytes = 0;  // the parts and room for one partial sum: (E + 3)·B·T·D values
    int64_t last_use = 0;
    // A greedy round's candidates share every expert but one with the round's incumbent: the
    // sum residual + s·shared + Σ w_e·out_e over the experts two consecutive candidates share
    // is kept, so the round's other candidates add one expert to it (1 addition, not k + 1).
    at::Tensor partial;
    std::vector<std::pair<int, double>> partial_terms;  // (expert, weight), sorted
    double partial_shared = 0;
    int64_t partial_rows = 0;
    std::vector<int> previous_experts;  // the last candidate's, sorted
  };
  KeptParts* parts(int layer);
  void evict_parts_for(int64_t bytes);  // until `bytes` more fit under the cap, or no parts are left
  std::map<std::tuple<int, bool, int64_t, int>, at::Tensor> hidden_references_;
  std::map<int, KeptParts> parts_;  // by layer
  // Boundaries under an incumbent plan for its leading `rows` sequences (rows -1: all).
  struct Incumbent {
    Plan plan;
    int64_t rows = -1;
    std::map<int, at::Tensor> boundaries;
    int64_t last_use = 0;
  };
  static constexpr size_t kIncumbents = 4;
  std::vector<Incumbent> incumbents_;
  at::Tensor incumbent_boundary(const Plan& incumbent, int64_t rows, int layer);
  void drop_incumbent(size_t index);
  int64_t use_clock_ = 0;
  Stats stats_;
};

// Measures a search objective (the names of search/candidate.h's Objective) on a candidate:
//   scope "layer": the changed layer's output vs the base's; scope "model": the final output.
//   divergence js-logits / kl: next-token distributions (final norm + LM head, in vocabulary
//   chunks); js-hidden / mse / cosine: hidden states (final-norm outputs at model scope, and
//   at layer scope for the last decoder layer, whose output is the model's last hidden state).
// calib_fraction < 1 uses that leading fraction of the calibration sequences. The mean over
// tokens is the cache's divergence_mean().
// incumbent: the plan `plan` extends, when known (model scope only: layer selection).
double measure_objective(LayerCache& cache, const DivergenceInfo& divergence, const std::string& scope,
                         const Plan& plan, double calib_fraction = 1.0, const Plan* incumbent = nullptr);
// The same, the divergence by name (core/objectives.h; bad input when unknown).
double measure_objective(LayerCache& cache, const std::string& divergence, const std::string& scope, const Plan& plan,
                         double calib_fraction = 1.0, const Plan* incumbent = nullptr);

}  // namespace cdmoe::eval
