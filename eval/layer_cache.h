// LayerCache: the calibration set's hidden states at layer boundaries under a base plan, kept
// per worker so a candidate that differs from the base only from layer l on runs from l
// (layer selection: l..L; expert selection, whose objective is local: layer l alone) instead
// of from the embeddings (ARCHITECTURE.md §2). Boundaries are computed on first use from the
// nearest earlier cached one and kept while they fit under the memory cap; past it they are
// recomputed (never evicted, so results do not depend on access order). Changing the base
// invalidates every boundary after the first layer whose operation changed.
// Results with and without the cache are identical (the same operations run either way).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

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
  int num_layers() const { return int(model_.shape().num_layers); }

  // Hidden state entering `layer` (0..L; L is the last layer's output) under the base plan.
  at::Tensor boundary(int layer);
  // The last layer's output under `plan`, run from the first layer where it differs from the
  // base, for the first `rows` calibration sequences (-1: all).
  at::Tensor final_hidden(const Plan& plan, int64_t rows = -1);
  // Layer `layer`'s output under `plan`, which may differ from the base at that layer only.
  at::Tensor layer_output(const Plan& plan, int layer, int64_t rows = -1);
  // First layer whose operation differs between the plans; num_layers() when none does.
  int first_difference(const Plan& a, const Plan& b) const;
  // The base's final output as the reference of a vocabulary divergence over the first `rows`
  // sequences (their valid tokens), built on first use and kept until the base changes; its
  // log-probabilities are kept while they fit under the cap with the boundaries.
  const VocabularyReference& vocabulary_reference(int64_t rows);

  struct Stats {
    int64_t hits = 0, computed = 0, bytes = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  const model::MoeModel& model_;
  at::Tensor ids_, mask_;
  Plan base_;
  int64_t cap_bytes_;
  std::map<int, at::Tensor> boundaries_;
  std::map<int64_t, std::unique_ptr<VocabularyReference>> references_;  // by leading rows
  Stats stats_;
};

// Measures a search objective (the names of search/candidate.h's Objective) on a candidate:
//   scope "layer": the changed layer's output vs the base's; scope "model": the final output.
//   divergence js-logits / kl: next-token distributions (final norm + LM head, in vocabulary
//   chunks); js-hidden / mse / cosine: hidden states (final-norm outputs at model scope).
// calib_fraction < 1 uses that leading fraction of the calibration sequences.
double measure_objective(LayerCache& cache, const DivergenceInfo& divergence, const std::string& scope,
                         const Plan& plan, double calib_fraction = 1.0);
// The same, the divergence by name (core/objectives.h; bad input when unknown).
double measure_objective(LayerCache& cache, const std::string& divergence, const std::string& scope, const Plan& plan,
                         double calib_fraction = 1.0);

}  // namespace cdmoe::eval
