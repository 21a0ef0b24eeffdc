#include "eval/layer_cache.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

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

at::Tensor leading(const at::Tensor& t, int64_t rows) { return rows < 0 ? t : t.narrow(0, 0, rows); }

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
  for (auto it = parts_.begin(); it != parts_.end();) {  // their input (or the layer itself) changed
    if (it->first >= keep_through) {
      stats_.bytes -= it->second.bytes;
      stats_.parts_bytes -= it->second.bytes;
      it = parts_.erase(it);
    } else {
      ++it;
    }
  }
  while (!incumbents_.empty()) drop_incumbent(0);  // they start from the base's boundaries
  for (const auto& [key, prepared] : hidden_references_) stats_.bytes -= int64_t(prepared.nbytes());
  hidden_references_.clear();
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
  // Every model-scope candidate needs the reference; expert outputs can be recomputed: they
  // make room for it (least recently used first) where that lets it keep its logits.
  const int64_t wanted = vocabulary_reference_bytes(x_rows.size(0), model_.shape().vocab_size, model_.lm_head_weight().scalar_type());
  if (stats_.bytes - stats_.parts_bytes + wanted <= cap_bytes_) evict_parts_for(wanted);
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

at::Tensor LayerCache::final_hidden(const Plan& plan, int64_t rows, const Plan* incumbent) {
  int from = first_difference(base_, plan);
  if (from == num_layers()) return leading(boundary(num_layers()), rows);
  if (incumbent && cap_bytes_ > 0) {
    int after_incumbent = first_difference(*incumbent, plan);
    if (after_incumbent > from) {
      at::Tensor h = incumbent_boundary(*incumbent, rows, after_incumbent);
      if (after_incumbent == num_layers()) return h;
      return model_.run_layers(h, leading(mask_, rows), after_incumbent, num_layers(), plan);
    }
  }
  return model_.run_layers(leading(boundary(from), rows), leading(mask_, rows), from, num_layers(), plan);
}

void LayerCache::drop_incumbent(size_t index) {
  for (const auto& [layer, h] : incumbents_[index].boundaries) {
    stats_.bytes -= int64_t(h.nbytes());
    stats_.incumbent_bytes -= int64_t(h.nbytes());
  }
  incumbents_.erase(incumbents_.begin() + int64_t(index));
}

at::Tensor LayerCache::incumbent_boundary(const Plan& incumbent, int64_t rows, int layer) {
  if (rows < 0) rows = mask_.size(0);  // all rows: one chain however they were asked for
  size_t index = 0;
  while (index < incumbents_.size() && !(incumbents_[index].rows == rows && incumbents_[index].plan == incumbent)) ++index;
  if (index == incumbents_.size()) {
    if (incumbents_.size() == kIncumbents) {
      size_t oldest = 0;
      for (size_t i = 1; i < incumbents_.size(); ++i) {
        if (incumbents_[i].last_use < incumbents_[oldest].last_use) oldest = i;
      }
      drop_incumbent(oldest);
    }
    incumbents_.push_back(Incumbent{incumbent, rows, {}, 0});
    index = incumbents_.size() - 1;
  }
  Incumbent& chain = incumbents_[index];
  chain.last_use = ++use_clock_;
  auto found = chain.boundaries.find(layer);
  if (found != chain.boundaries.end()) {
    ++stats_.incumbent_hits;
    return found->second;
  }
  // From the nearest kept boundary of the incumbent below, else the base's where they part.
  int from = first_difference(base_, incumbent);
  at::Tensor h;
  auto below = chain.boundaries.lower_bound(layer);
  if (below != chain.boundaries.begin() && std::prev(below)->first >= from) {
    --below;
    from = below->first;
    h = below->second;
  } else {
    h = leading(boundary(from), rows);
  }
  h = model_.run_layers(h, leading(mask_, rows), from, layer, incumbent);
  ++stats_.incumbent_computed;
  if (stats_.bytes + int64_t(h.nbytes()) <= cap_bytes_) {
    chain.boundaries.emplace(layer, h);
    stats_.bytes += int64_t(h.nbytes());
    stats_.incumbent_bytes += int64_t(h.nbytes());
  }
  return h;
}

at::Tensor LayerCache::row_weights(int64_t rows) const {
  return divergence_row_weights(mask_.narrow(0, 0, rows), mean_);
}

at::Tensor LayerCache::hidden_reference(int boundary_layer, bool final_norm, int64_t rows, DivergenceKind kind) {
  const auto key = std::make_tuple(boundary_layer, final_norm, rows, int(kind));
  auto found = hidden_references_.find(key);
  if (found != hidden_references_.end()) return found->second;
  at::Tensor h = boundary(boundary_layer).narrow(0, 0, rows);
  if (final_norm) h = model_.final_norm(h);
  at::Tensor prepared = prepare_hidden_reference(kind, h.reshape({-1, h.size(-1)}), mask_.narrow(0, 0, rows).to(at::kBool).flatten());
  const int64_t bytes = int64_t(prepared.nbytes());
  if (cap_bytes_ > 0 && stats_.bytes - stats_.parts_bytes + bytes <= cap_bytes_) {
    evict_parts_for(bytes);
    stats_.bytes += bytes;
    hidden_references_.emplace(key, prepared);
  }
  return prepared;
}

LayerCache::KeptParts* LayerCache::parts(int layer) {
  auto found = parts_.find(layer);
  if (found != parts_.end()) {
    ++stats_.parts_hits;
    found->second.last_use = ++use_clock_;
    return &found->second;
  }
  const ModelShape& shape = model_.shape();
  const int64_t values = (shape.num_routed_experts + 3) * ids_.numel() * shape.hidden_size;
  const int64_t bytes = values * int64_t(c10::elementSize(model_.dtype()));
  at::Tensor input = boundary(layer);  // cached first: the parts' room is what the boundaries leave
  if (bytes > cap_bytes_ - (stats_.bytes - stats_.parts_bytes)) return nullptr;
  evict_parts_for(bytes);
  KeptParts kept;
  kept.parts = model_.moe_parts(input, mask_, layer);
  kept.bytes = bytes;
  kept.last_use = ++use_clock_;
  ++stats_.parts_computed;
  stats_.bytes += bytes;
  stats_.parts_bytes += bytes;
  return &parts_.emplace(layer, std::move(kept)).first->second;
}

void LayerCache::evict_parts_for(int64_t bytes) {
  while (stats_.bytes + bytes > cap_bytes_ && !parts_.empty()) {  // least recently used layers first
    auto oldest = parts_.begin();
    for (auto it = parts_.begin(); it != parts_.end(); ++it) {
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    }
    stats_.bytes -= oldest->second.bytes;
    stats_.parts_bytes -= oldest->second.bytes;
    ++stats_.parts_evicted;
    parts_.erase(oldest);
  }
}

at::Tensor LayerCache::condensed_from_parts(const Plan& plan, int layer, int64_t rows) {
  if (cap_bytes_ <= 0 || base_.layers().count(layer) || model_.fixed_plan().layers().count(layer)) return {};
  auto op = plan.layers().find(layer);
  if (op == plan.layers().end() || op->second.op != LayerOp::kCondense) return {};
  plan.validate(model_.shape(), "plan");
  const model::MoeModel::CondenseWeights weights = model_.condense_weights(layer, op->second);
  KeptParts* kept = parts(layer);
  if (!kept) return {};
  const model::MoeModel::MoeParts& p = kept->parts;
  // The layer's output, residual + s·shared + Σ w_e·out_e: one expert added to the kept partial
  // sum when that holds all of the plan's experts but one. Otherwise the partial sum is formed
  // and kept without the one expert the previous candidate here did not have (consecutive
  // candidates of a greedy round share the round's incumbent), or without the last expert.
  std::vector<std::pair<int, double>> terms;
  for (size_t i = 0; i < op->second.experts.size(); ++i) terms.emplace_back(op->second.experts[i], weights.experts[i]);
  std::sort(terms.begin(), terms.end());
  std::vector<int> previous = std::move(kept->previous_experts);
  kept->previous_experts.clear();
  for (const auto& term : terms) kept->previous_experts.push_back(term.first);
  auto without = [&](size_t skip) {
    std::vector<std::pair<int, double>> rest = terms;
    rest.erase(rest.begin() + std::ptrdiff_t(skip));
    return rest;
  };
  auto add_expert = [&](const at::Tensor& sum, const std::pair<int, double>& term) {
    return at::add(sum, leading(p.experts[term.first], rows), term.second);
  };
  if (kept->partial.defined() && kept->partial_rows == rows && kept->partial_shared == weights.shared) {
    for (size_t skip = 0; skip < terms.size(); ++skip) {
      if (without(skip) == kept->partial_terms) {
        ++stats_.partial_sum_hits;
        return add_expert(kept->partial, terms[skip]);
      }
    }
  }
  at::Tensor partial = leading(p.residual, rows) + leading(p.shared, rows) * weights.shared;
  if (terms.empty()) return partial;
  size_t skip = terms.size() - 1, new_to_this_layer = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (std::find(previous.begin(), previous.end(), terms[i].first) == previous.end()) {
      skip = i;
      ++new_to_this_layer;
    }
  }
  if (new_to_this_layer != 1) skip = terms.size() - 1;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i != skip) partial.add_(leading(p.experts[terms[i].first], rows), terms[i].second);
  }
  kept->partial = partial;
  kept->partial_terms = without(skip);
  kept->partial_shared = weights.shared;
  kept->partial_rows = rows;
  return add_expert(partial, terms[skip]);
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
  at::Tensor summed = condensed_from_parts(plan, layer, rows);
  if (summed.defined()) return summed;
  return model_.run_layers(leading(boundary(layer), rows), leading(mask_, rows), layer, layer + 1, plan);
}

double measure_objective(LayerCache& cache, const DivergenceInfo& divergence, const std::string& scope,
                         const Plan& plan, double calib_fraction, const Plan* incumbent) {
  int64_t sequences = cache.mask().size(0);
  int64_t rows = calib_fraction < 1 ? std::max<int64_t>(1, int64_t(std::lround(calib_fraction * double(sequences)))) : sequences;
  validate_objective_scope(scope, "objective");
  at::Tensor reference, candidate;
  int compared_at = cache.num_layers();  // the boundary the two sides are compared at
  if (scope == "layer") {
    int layer = cache.first_difference(cache.base(), plan);
    if (layer == cache.num_layers()) throw_bad_input("a layer-scope objective needs a plan that changes one layer");
    compared_at = layer + 1;
    reference = cache.boundary(layer + 1).narrow(0, 0, rows);
    candidate = cache.layer_output(plan, layer, rows);
  } else {
    reference = cache.boundary(cache.num_layers()).narrow(0, 0, rows);
    candidate = cache.final_hidden(plan, rows, incumbent);
  }
  at::Tensor valid = cache.mask().to(at::kBool).narrow(0, 0, rows);
  const at::Tensor weights = cache.row_weights(rows);
  const model::MoeModel& model = cache.model();
  const DivergenceKind kind = divergence.kind;
  if (!divergence.vocabulary) {  // hidden states: the reference side prepared once per boundary
    // The model's last hidden state is compared after the final norm, also when it is the last
    // layer's own output (layer scope): transformers' hidden_states[-1], which the CD-MoE
    // reference compares for its last MoE layer, is normed; the other layers' outputs are not.
    const bool normed = compared_at == cache.num_layers();
    if (normed) candidate = model.final_norm(candidate);
    at::Tensor prepared = cache.hidden_reference(compared_at, normed, rows, kind);
    return hidden_divergence(kind, prepared, candidate.reshape({-1, candidate.size(-1)}), valid.flatten(), weights);
  }
  // Next-token distributions (final norm + LM head). At model scope the reference is the same
  // for every candidate: prepared once.
  if (scope == "model") {
    const VocabularyReference& prepared = cache.vocabulary_reference(rows);
    at::Tensor q_rows = valid_final_rows(model, candidate, valid);
    return kind == DivergenceKind::kJsLogits ? js_logits(prepared, q_rows, weights) : kl_logits(prepared, q_rows, weights);
  }
  const int64_t D = reference.size(-1);
  at::Tensor ref = model.final_norm(reference).reshape({-1, D}), cand = model.final_norm(candidate).reshape({-1, D});
  const int64_t chunk = kVocabularyChunk;
  const VocabularyKernel kernel = VocabularyKernel::kAuto;
  return kind == DivergenceKind::kJsLogits ? js_logits(ref, cand, model.lm_head_weight(), valid.flatten(), chunk, kernel, weights)
                                           : kl_logits(ref, cand, model.lm_head_weight(), valid.flatten(), chunk, kernel, weights);
}

double measure_objective(LayerCache& cache, const std::string& divergence, const std::string& scope, const Plan& plan,
                         double calib_fraction, const Plan* incumbent) {
  return measure_objective(cache, find_divergence(divergence, "objective"), scope, plan, calib_fraction, incumbent);
}

}  // namespace cdmoe::eval
