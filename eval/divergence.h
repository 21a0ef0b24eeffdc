// Divergences between the original model and a candidate on calibration tokens (DESIGN.md §2),
// and next-token negative log-likelihood, averaged over the valid (non-padding) tokens, in
// nats. Rows are tokens: hidden states [N, D], a validity mask [N] (bool; undefined: all).
// The vocabulary-sized ones never hold an [N, V] tensor: the LM head W [V, D] is applied in
// chunks of `vocab_chunk` rows, with a running log-sum-exp, so a 150k vocabulary costs
// [N, vocab_chunk] of memory.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace cdmoe::eval {

// Mean over valid rows of JS(softmax(x_ref Wᵀ) ‖ softmax(x_cand Wᵀ)); x are final-norm outputs.
double js_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk = 8192);
// Mean over valid rows of KL(softmax(x_ref Wᵀ) ‖ softmax(x_cand Wᵀ)).
double kl_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk = 8192);
// The reference code's variant: JS between softmax over the hidden dimension of two hidden states.
double js_hidden(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);
// Mean squared difference over valid rows and all D.
double mse(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);
// Mean over valid rows of 1 - cosine similarity.
double cosine_distance(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid);

struct NllSum {
  double nll = 0;      // sum over predicted tokens
  int64_t tokens = 0;  // predicted tokens counted
};
// Next-token NLL of x [B, T, D] (final-norm outputs) predicting ids[:, 1:], counting a position
// only when both it and its target are valid (mask [B, T]; undefined: all).
NllSum next_token_nll(const at::Tensor& x, const at::Tensor& head_weight, const at::Tensor& ids,
                      const at::Tensor& mask, int64_t vocab_chunk = 8192);

}  // namespace cdmoe::eval
