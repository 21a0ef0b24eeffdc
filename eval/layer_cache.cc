#include "eval/layer_cache.h"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.h"
#include "eval/divergence.h"

namespace cdmoe::eval {
namespace {

// The final-norm outputs of hidden [B, T, D] at the tokens `mask` [B, T] marks valid, as rows
// [N, D]: the rows a vocabulary divergence compares.
at::Tensor valid_final_rows(const model::MoeModel& model, const at::Tensor& hidden, const at::Tensor& mask) {
  at::Tensor x = model.final_norm(hidden);
  return x.reshape({-1, x.size(-1)}).index_select(0, mask.to(at::kBool).flatten().nonzero().squeeze(1));
}

}  // namespace

LayerCache::LayerCache(const model::MoeModel& model, at::Tensor ids, at::Tensor mask, Plan base, int64_t cap_bytes)
    : model_(model), ids_(std::move(ids)), mask_(std::move(mask)), base_(std::move(base)), cap_bytes_(cap_bytes) {
  if (!mask_.defined()) mask_ = at::ones_like(ids_);
  ids_ = ids_.to(model_.device());  // resident where the model computes
  mask_ = mask_.to(model_.device());
  base_.validate(model_.shape(), "layer cache base plan");
}

int LayerCache::first_difference(const Plan& a, const Plan& b) const {
  for (int layer = 0; layer < num_layers(); ++layer) {
    auto x = a.layers().find(layer), y = b.layers().find(layer);
    bool in_a = x != a.layers().end(), in_b = y != b.layers().end();
    if (in_a != in_b || (in_a && !(x->second == y->second))) return layer;
  }
  return num_layers();
}

void LayerCache::set_base(Plan base) {
  int keep_through = first_difference(base_, base);  // boundaries up to it are unchanged
  for (auto it = boundaries_.begin(); it != boundaries_.end();) {
    if (it->first > keep_through) {
      stats_.bytes -= int64_t(it->second.nbytes());
      it = boundaries_.erase(it);
    } else {
      ++it;
    }
  }
  base_ = std::move(base);
  if (keep_through < num_layers()) {  // the final output changed: so did every reference
    for (const auto& [rows, reference] : references_) stats_.bytes -= reference->kept_bytes();
    references_.clear();
  }
}

const VocabularyReference& LayerCache::vocabulary_reference(int64_t rows) {
  auto found = references_.find(rows);
  if (found != references_.end()) return *found->second;
  at::Tensor x_rows = valid_final_rows(model_, boundary(num_layers()).narrow(0, 0, rows), mask_.narrow(0, 0, rows));
  auto reference = std::make_unique<VocabularyReference>(x_rows, model_.lm_head_weight(), kVocabularyChunk,
                                                         cap_bytes_ - stats_.bytes);
  stats_.bytes += reference->kept_bytes();
  return *references_.emplace(rows, std::move(reference)).first->second;
}

at::Tensor LayerCache::boundary(int layer) {
  auto found = boundaries_.find(layer);
  if (found != boundaries_.end()) {
    ++stats_.hits;
    return found->second;
  }
  // Start from the nearest cached boundary below, else the embeddings.
  int from = 0;
  at::Tensor h;
  auto below = boundaries_.lower_bound(layer);
  if (below != boundaries_.begin()) {
    --below;
    from = below->first;
    h = below->second;
  } else {
    h = model_.embed(ids_);
  }
  h = model_.run_layers(h, mask_, from, layer, base_);
  ++stats_.computed;
  if (stats_.bytes + int64_t(h.nbytes()) <= cap_bytes_) {
    boundaries_.emplace(layer, h);
    stats_.bytes += int64_t(h.nbytes());
  }
  return h;
}

namespace {

at::Tensor leading(const at::Tensor& t, int64_t rows) { return rows < 0 ? t : t.narrow(0, 0, rows); }

}  // namespace

at::Tensor LayerCache::final_hidden(const Plan& plan, int64_t rows) {
  int from = first_difference(base_, plan);
  if (from == num_layers()) return leading(boundary(num_layers()), rows);
  return model_.run_layers(leading(boundary(from), rows), leading(mask_, rows), from, num_layers(), plan);
}

at::Tensor LayerCache::layer_output(const Plan& plan, int layer, int64_t rows) {
  int from = first_difference(base_, plan);
  Plan rest = plan;
  rest.reset_layer(layer);
  Plan base_rest = base_;
  base_rest.reset_layer(layer);
  if (from < layer || first_difference(rest, base_rest) != num_layers()) {
    throw_runtime("layer_output: the plan differs from the base at a layer other than " + std::to_string(layer));
  }
  return model_.run_layers(leading(boundary(layer), rows), leading(mask_, rows), layer, layer + 1, plan);
}

double measure_objective(LayerCache& cache, const DivergenceInfo& divergence, const std::string& scope,
                         const Plan& plan, double calib_fraction) {
  int64_t sequences = cache.mask().size(0);
  int64_t rows = calib_fraction < 1 ? std::max<int64_t>(1, int64_t(std::lround(calib_fraction * double(sequences)))) : sequences;
  validate_objective_scope(scope, "objective");
  at::Tensor reference, candidate;
  if (scope == "layer") {
    int layer = cache.first_difference(cache.base(), plan);
    if (layer == cache.num_layers()) throw_bad_input("a layer-scope objective needs a plan that changes one layer");
    reference = cache.boundary(layer + 1).narrow(0, 0, rows);
    candidate = cache.layer_output(plan, layer, rows);
  } else {
    reference = cache.boundary(cache.num_layers()).narrow(0, 0, rows);
    candidate = cache.final_hidden(plan, rows);
  }
  at::Tensor valid = cache.mask().to(at::kBool).narrow(0, 0, rows);
  const model::MoeModel& model = cache.model();
  const DivergenceKind kind = divergence.kind;
  if (divergence.vocabulary && scope == "model") {  // the reference is the same for every candidate: prepared once
    const VocabularyReference& prepared = cache.vocabulary_reference(rows);
    at::Tensor q_rows = valid_final_rows(model, candidate, valid);
    return kind == DivergenceKind::kJsLogits ? js_logits(prepared, q_rows) : kl_logits(prepared, q_rows);
  }
  if (divergence.vocabulary || scope == "model") {  // next-token space, or the final-norm output
    reference = model.final_norm(reference);
    candidate = model.final_norm(candidate);
  }
  int64_t D = reference.size(-1);
  at::Tensor ref = reference.reshape({-1, D}), cand = candidate.reshape({-1, D}), flat_valid = valid.flatten();
  switch (kind) {
    case DivergenceKind::kJsLogits: return js_logits(ref, cand, model.lm_head_weight(), flat_valid);
    case DivergenceKind::kKl: return kl_logits(ref, cand, model.lm_head_weight(), flat_valid);
    case DivergenceKind::kJsHidden: return js_hidden(ref, cand, flat_valid);
    case DivergenceKind::kMse: return mse(ref, cand, flat_valid);
    case DivergenceKind::kCosine: return cosine_distance(ref, cand, flat_valid);
  }
  throw_runtime("measure_objective: a divergence kind without a kernel");
}

double measure_objective(LayerCache& cache, const std::string& divergence, const std::string& scope, const Plan& plan,
                         double calib_fraction) {
  return measure_objective(cache, find_divergence(divergence, "objective"), scope, plan, calib_fraction);
}

}  // namespace cdmoe::eval
