#include "eval/divergence.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace cdmoe::eval {
namespace {

at::Tensor valid_rows(const at::Tensor& x, const at::Tensor& valid) {
  return valid.defined() ? x.index_select(0, valid.to(at::kBool).nonzero().squeeze(1)) : x;
}

// Rows [index * chunk, (index + 1) * chunk) of the LM head, the last chunk shorter.
at::Tensor chunk_of(const at::Tensor& w, int64_t chunk, int64_t index) {
  int64_t begin = index * chunk;
  return w.narrow(0, begin, std::min(chunk, w.size(0) - begin));
}

// log Σ_v exp(x Wᵀ)_v per row, accumulated chunk by chunk (running max for stability).
at::Tensor chunked_logsumexp(const at::Tensor& x, const at::Tensor& w, int64_t chunk) {
  at::Tensor running = at::full({x.size(0)}, -std::numeric_limits<double>::infinity(), x.options().dtype(at::kDouble));
  for (int64_t index = 0; index * chunk < w.size(0); ++index) {
    at::Tensor logits = at::linear(x, chunk_of(w, chunk, index)).to(at::kDouble);
    running = at::logaddexp(running, logits.logsumexp(1));
  }
  return running;
}

enum class Kind { kJs, kKl };

double vocabulary_divergence(Kind kind, const VocabularyReference& reference, const at::Tensor& q_rows) {
  const at::Tensor& w = reference.head_weight();
  int64_t chunk = reference.vocab_chunk();
  if (q_rows.size(0) != reference.rows()) throw_runtime("divergence: candidate and reference rows differ");
  at::Tensor lse_q = chunked_logsumexp(q_rows, w, chunk).unsqueeze(1);
  at::Tensor total = at::zeros({q_rows.size(0)}, at::kDouble);
  for (int64_t index = 0; index * chunk < w.size(0); ++index) {
    at::Tensor log_p = reference.log_probs(index);
    at::Tensor log_q = at::linear(q_rows, chunk_of(w, chunk, index)).to(at::kDouble) - lse_q;
    at::Tensor p = log_p.exp(), q = log_q.exp();
    if (kind == Kind::kKl) {
      total += (p * (log_p - log_q)).sum(1);
    } else {
      at::Tensor log_m = at::logaddexp(log_p, log_q) - std::log(2.0);
      total += 0.5 * (p * (log_p - log_m)).sum(1) + 0.5 * (q * (log_q - log_m)).sum(1);
    }
  }
  return total.mean().item<double>();
}

double vocabulary_divergence(Kind kind, const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& w,
                             const at::Tensor& valid, int64_t chunk) {
  return vocabulary_divergence(kind, VocabularyReference(valid_rows(x_ref, valid), w, chunk, 0), valid_rows(x_cand, valid));
}

}  // namespace

VocabularyReference::VocabularyReference(at::Tensor x_rows, at::Tensor head_weight, int64_t vocab_chunk,
                                         int64_t keep_bytes)
    : x_(std::move(x_rows)), w_(std::move(head_weight)), chunk_(vocab_chunk) {
  if (chunk_ < 1) throw_runtime("vocab_chunk must be positive");
  if (x_.size(0) == 0) throw_bad_input("no valid calibration tokens to measure a divergence on");
  lse_ = chunked_logsumexp(x_, w_, chunk_).unsqueeze(1);
  if (x_.size(0) * w_.size(0) * int64_t(sizeof(double)) > keep_bytes) return;
  for (int64_t index = 0; index * chunk_ < w_.size(0); ++index) kept_.push_back(compute_log_probs(index));
}

at::Tensor VocabularyReference::compute_log_probs(int64_t index) const {
  return at::linear(x_, chunk_of(w_, chunk_, index)).to(at::kDouble) - lse_;
}

at::Tensor VocabularyReference::log_probs(int64_t index) const {
  return kept_.empty() ? compute_log_probs(index) : kept_[size_t(index)];
}

int64_t VocabularyReference::kept_bytes() const {
  int64_t bytes = 0;
  for (const at::Tensor& t : kept_) bytes += int64_t(t.nbytes());
  return bytes;
}

double js_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows) {
  return vocabulary_divergence(Kind::kJs, reference, x_cand_rows);
}

double kl_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows) {
  return vocabulary_divergence(Kind::kKl, reference, x_cand_rows);
}

double js_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk) {
  return vocabulary_divergence(Kind::kJs, x_ref, x_cand, head_weight, valid, vocab_chunk);
}

double kl_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk) {
  return vocabulary_divergence(Kind::kKl, x_ref, x_cand, head_weight, valid, vocab_chunk);
}

double js_hidden(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  at::Tensor log_p = at::log_softmax(valid_rows(h_ref, valid).to(at::kDouble), 1);
  at::Tensor log_q = at::log_softmax(valid_rows(h_cand, valid).to(at::kDouble), 1);
  at::Tensor log_m = at::logaddexp(log_p, log_q) - std::log(2.0);
  at::Tensor js = 0.5 * (log_p.exp() * (log_p - log_m)).sum(1) + 0.5 * (log_q.exp() * (log_q - log_m)).sum(1);
  return js.mean().item<double>();
}

double mse(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  return (valid_rows(h_ref, valid).to(at::kDouble) - valid_rows(h_cand, valid).to(at::kDouble)).pow(2).mean().item<double>();
}

double cosine_distance(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  at::Tensor a = valid_rows(h_ref, valid).to(at::kDouble), b = valid_rows(h_cand, valid).to(at::kDouble);
  return (1 - at::cosine_similarity(a, b, 1, 1e-12)).mean().item<double>();
}

NllSum next_token_nll(const at::Tensor& x, const at::Tensor& head_weight, const at::Tensor& ids,
                      const at::Tensor& mask, int64_t vocab_chunk) {
  int64_t B = x.size(0), T = x.size(1);
  if (T < 2) return {};
  at::Tensor valid = mask.defined() ? mask.to(at::kBool) : at::ones({B, T}, at::kBool);
  at::Tensor counted = (valid.narrow(1, 0, T - 1) & valid.narrow(1, 1, T - 1)).flatten();
  at::Tensor rows = valid_rows(x.narrow(1, 0, T - 1).reshape({-1, x.size(2)}), counted);
  at::Tensor targets = valid_rows(ids.narrow(1, 1, T - 1).reshape({-1, 1}), counted).squeeze(1);
  if (rows.size(0) == 0) return {};
  at::Tensor lse = chunked_logsumexp(rows, head_weight, vocab_chunk);
  at::Tensor target_logit = (rows * head_weight.index_select(0, targets)).sum(1).to(at::kDouble);
  return NllSum{(lse - target_logit).sum().item<double>(), rows.size(0)};
}

}  // namespace cdmoe::eval
