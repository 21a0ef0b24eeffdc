// Divergences between the original model and a candidate on calibration tokens (ARCHITECTURE.md §2),
// and next-token negative log-likelihood, averaged over the valid (non-padding) tokens, in
// nats. Rows are tokens: hidden states [N, D], a validity mask [N] (bool; undefined: all).
// The vocabulary-sized ones never hold an [N, V] tensor: the LM head W [V, D] is applied in
// chunks of `vocab_chunk` rows, with a running log-sum-exp, so a 150k vocabulary costs
// [N, vocab_chunk] of memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/objectives.h"

namespace cdmoe::eval {

// LM-head rows per chunk: [N, 8192] float64 logits at a time, whatever the vocabulary size.
constexpr int64_t kVocabularyChunk = 8192;

// How the vocabulary-sized reductions run. kHostLoops: hand-fused float64 loops over host
// memory, one pass per chunk (CPU tensors only; the fastest there). kTensorOps: ATen operations,
// which run wherever the tensors live (a CUDA device). kAuto: host loops for CPU tensors, tensor
// operations otherwise. Both give the same values up to rounding (tested on CPU).
enum class VocabularyKernel { kAuto, kHostLoops, kTensorOps };

// The reference side of a vocabulary divergence, which every candidate of a search shares:
// the valid reference rows' log-sum-exp over the vocabulary and, when they fit in `keep_bytes`,
// their logits chunk by chunk (as the LM-head product gives them: float32 for a float32 or
// bfloat16 model, N x V x 4 bytes), from which the log-probabilities follow by one subtraction
// in float64. What is not kept is recomputed by the same operations, so values never depend on
// what was kept.
class VocabularyReference {
 public:
  // x_rows [N, D]: the reference's valid final-norm rows; head_weight [V, D], on x_rows' device.
  VocabularyReference(at::Tensor x_rows, at::Tensor head_weight, int64_t vocab_chunk, int64_t keep_bytes,
                      VocabularyKernel kernel = VocabularyKernel::kAuto);
  int64_t rows() const { return x_.size(0); }
  const at::Tensor& head_weight() const { return w_; }
  int64_t vocab_chunk() const { return chunk_; }
  VocabularyKernel kernel() const { return kernel_; }  // never kAuto: resolved by device
  int64_t kept_bytes() const;
  const at::Tensor& logsumexp() const { return lse_; }  // [N, 1] float64
  at::Tensor log_probs(int64_t chunk_index) const;      // [N, chunk] float64
  at::Tensor logits(int64_t chunk_index) const;         // [N, chunk] contiguous, as chunk_logits gives them

 private:
  at::Tensor x_, w_, lse_;
  int64_t chunk_;
  VocabularyKernel kernel_;
  std::vector<at::Tensor> kept_;  // the logits of each chunk
};

// What a VocabularyReference of `rows` rows over a `vocab`-word head keeps when allowed to.
int64_t vocabulary_reference_bytes(int64_t rows, int64_t vocab, at::ScalarType head_dtype);

// Every divergence below is a mean over the valid rows: plain, or weighted by `row_weights`
// [valid rows] (float64, summing to 1; undefined: plain) as divergence_row_weights gives them.
// The weights of the valid tokens of mask [B, T], in row-major order (the order valid rows are
// taken in): undefined for DivergenceMean::kToken; for kSequence 1 / (len_b · S), len_b the
// valid tokens of sequence b and S the sequences holding any, so the mean is the mean over
// sequences of each sequence's own mean (the CD-MoE reference's average). On the host.
at::Tensor divergence_row_weights(const at::Tensor& mask, DivergenceMean mean);

// js_logits / kl_logits against a prepared reference, with its kernel; x_cand_rows are the
// candidate's rows for the same tokens [N, D].
double js_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows, const at::Tensor& row_weights = {});
double kl_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows, const at::Tensor& row_weights = {});

// Mean over valid rows of JS(softmax(x_ref Wᵀ) ‖ softmax(x_cand Wᵀ)); x are final-norm outputs.
double js_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk = kVocabularyChunk,
                 VocabularyKernel kernel = VocabularyKernel::kAuto, const at::Tensor& row_weights = {});
// Mean over valid rows of KL(softmax(x_ref Wᵀ) ‖ softmax(x_cand Wᵀ)).
double kl_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk = kVocabularyChunk,
                 VocabularyKernel kernel = VocabularyKernel::kAuto, const at::Tensor& row_weights = {});
// The reference code's variant: JS between softmax over the hidden dimension of two hidden states.
double js_hidden(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);
// Mean squared difference over valid rows and all D.
double mse(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);
// Mean over valid rows of 1 - cosine similarity.
double cosine_distance(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);
// The same three with the reference side prepared once (what every candidate of a layer shares):
// prepare_hidden_reference gives js-hidden's float64 log-softmax of the valid reference rows
// and its exponential ([N, 2, D]: every candidate takes the reference's probabilities from it),
// or (mse, cosine) the valid rows in float64 ([N, D]); hidden_divergence then equals js_hidden
// / mse / cosine_distance exactly (they are written as these two steps).
at::Tensor prepare_hidden_reference(DivergenceKind kind, const at::Tensor& h_ref, const at::Tensor& valid);
double hidden_divergence(DivergenceKind kind, const at::Tensor& prepared, const at::Tensor& h_cand, const at::Tensor& valid,
                         const at::Tensor& row_weights = {});

struct NllSum {
  double nll = 0;      // sum over predicted tokens
  int64_t tokens = 0;  // predicted tokens counted
};
// Next-token NLL of x [B, T, D] (final-norm outputs) predicting ids[:, 1:], counting a position
// only when both it and its target are valid (mask [B, T]; undefined: all). ids and mask may
// live on the host when x does not.
NllSum next_token_nll(const at::Tensor& x, const at::Tensor& head_weight, const at::Tensor& ids,
                      const at::Tensor& mask, int64_t vocab_chunk = kVocabularyChunk,
                      VocabularyKernel kernel = VocabularyKernel::kAuto);

}  // namespace cdmoe::eval
