#include "eval/divergence.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/error.h"
#include "eval/row_kernels.h"

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

// At least float32: a bfloat16 model's rows and LM head are widened before the product, so its
// logits carry no more rounding than its hidden states do (bfloat16 logits would blur the small
// divergences a search ranks candidates by).
at::Tensor widened(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble ? t : t.to(at::kFloat);
}

// The logits of one vocabulary chunk, [N, C] contiguous, float32 or float64 as the inputs.
at::Tensor chunk_logits(const at::Tensor& x, const at::Tensor& w, int64_t chunk, int64_t index) {
  return at::linear(widened(x), widened(chunk_of(w, chunk, index))).contiguous();
}

// Calls body(row, pointer to the row's C values) for every row, rows split across threads.
// The vocabulary-sized loops below are fused by hand: one pass over memory per chunk, in
// float64, instead of a dozen [N, C] float64 temporaries (they were most of a candidate's cost),
// their exponentials and logs vectorised (eval/row_kernels.h).
template <typename Body>
void for_each_row(const at::Tensor& logits, Body body) {
  int64_t rows = logits.size(0), width = logits.size(1);
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (logits.scalar_type() == at::kFloat) body(r, logits.data_ptr<float>() + r * width);
      else body(r, logits.data_ptr<double>() + r * width);
    }
  });
}

// A candidate's logits are needed twice (log-sum-exp, then the divergence): kept between the
// two passes when they take at most this much, else computed again (the same values).
constexpr int64_t kKeptLogitsBytes = int64_t(512) << 20;

VocabularyKernel resolve(VocabularyKernel kernel, const at::Tensor& x) {
  if (kernel == VocabularyKernel::kAuto) return x.is_cpu() ? VocabularyKernel::kHostLoops : VocabularyKernel::kTensorOps;
  if (kernel == VocabularyKernel::kHostLoops && !x.is_cpu()) {
    throw_runtime("vocabulary divergence: host loops need CPU tensors, these are on " + x.device().str());
  }
  return kernel;
}

// log Σ_v exp(x Wᵀ)_v per row [N] (float64, on x's device), accumulated chunk by chunk (host
// loops: with a running maximum; tensor operations: per-chunk logsumexp merged by logaddexp);
// each chunk's logits appended to `keep` when given.
at::Tensor chunked_logsumexp(const at::Tensor& x, const at::Tensor& w, int64_t chunk, VocabularyKernel kernel,
                             std::vector<at::Tensor>* keep = nullptr) {
  if (kernel == VocabularyKernel::kTensorOps) {
    at::Tensor lse;
    for (int64_t index = 0; index * chunk < w.size(0); ++index) {
      at::Tensor logits = chunk_logits(x, w, chunk, index);
      if (keep) keep->push_back(logits);
      at::Tensor part = at::logsumexp(logits.to(at::kDouble), 1);
      lse = lse.defined() ? at::logaddexp(lse, part) : part;
    }
    return lse;
  }
  int64_t rows = x.size(0);
  std::vector<double> max(size_t(rows), -std::numeric_limits<double>::infinity()), sum(size_t(rows), 0.0);
  for (int64_t index = 0; index * chunk < w.size(0); ++index) {
    at::Tensor logits = chunk_logits(x, w, chunk, index);
    if (keep) keep->push_back(logits);
    int64_t width = logits.size(1);
    for_each_row(logits, [&](int64_t r, const auto* row) {
      double top = std::max(max[size_t(r)], kernels::row_max(row, width));
      double total = std::isfinite(max[size_t(r)]) ? sum[size_t(r)] * std::exp(max[size_t(r)] - top) : 0.0;
      max[size_t(r)] = top;
      sum[size_t(r)] = total + kernels::sum_exp_row(row, top, width);
    });
  }
  at::Tensor lse = at::empty({rows}, at::kDouble);
  double* out = lse.data_ptr<double>();
  for (int64_t r = 0; r < rows; ++r) out[r] = max[size_t(r)] + std::log(sum[size_t(r)]);
  return lse;
}

enum class Kind { kJs, kKl };

// The mean of per-row values [N] (float64): plain, or weighted (weights sum to 1).
double row_mean(const at::Tensor& per_row, const at::Tensor& row_weights) {
  if (!row_weights.defined()) return per_row.mean().item<double>();
  if (row_weights.numel() != per_row.numel()) throw_runtime("divergence: row weights and rows differ in number");
  return (per_row * row_weights.to(per_row.device(), at::kDouble)).sum().item<double>();
}

// The mean over rows of Σ_v of the divergence's terms, chunk by chunk, with ATen operations;
// logits_q_of(index) gives the candidate's logits [N, C] of a chunk.
template <typename Logits>
double tensor_ops_divergence(Kind kind, const VocabularyReference& reference, int64_t chunks, const at::Tensor& lse_q,
                             Logits logits_q_of, const at::Tensor& row_weights) {
  at::Tensor total = at::zeros_like(lse_q);
  for (int64_t index = 0; index < chunks; ++index) {
    at::Tensor lp = reference.log_probs(index), lq = logits_q_of(index).to(at::kDouble) - lse_q.unsqueeze(1);
    if (kind == Kind::kKl) {
      total += (lp.exp() * (lp - lq)).sum(1);
    } else {
      at::Tensor log_m = at::logaddexp(lp, lq) - std::log(2.0);
      total += 0.5 * (lp.exp() * (lp - log_m) + lq.exp() * (lq - log_m)).sum(1);
    }
  }
  return row_mean(total, row_weights);
}

double vocabulary_divergence(Kind kind, const VocabularyReference& reference, const at::Tensor& q_rows,
                             const at::Tensor& row_weights) {
  const at::Tensor& w = reference.head_weight();
  int64_t chunk = reference.vocab_chunk();
  if (q_rows.size(0) != reference.rows()) throw_runtime("divergence: candidate and reference rows differ");
  std::vector<at::Tensor> kept_logits;
  bool keep = q_rows.size(0) * w.size(0) * int64_t(sizeof(float)) <= kKeptLogitsBytes;
  at::Tensor lse_q = chunked_logsumexp(q_rows, w, chunk, reference.kernel(), keep ? &kept_logits : nullptr);
  auto logits_q_of = [&](int64_t index) { return keep ? kept_logits[size_t(index)] : chunk_logits(q_rows, w, chunk, index); };
  int64_t chunks = (w.size(0) + chunk - 1) / chunk;
  if (reference.kernel() == VocabularyKernel::kTensorOps) {
    return tensor_ops_divergence(kind, reference, chunks, lse_q, logits_q_of, row_weights);
  }
  const double* lse = lse_q.data_ptr<double>();
  std::vector<double> total(size_t(q_rows.size(0)), 0.0);
  const double* lse_p = reference.logsumexp().data_ptr<double>();
  for (int64_t index = 0; index < chunks; ++index) {
    // The reference's logits as kept (or recomputed), its log-probabilities formed in the loop:
    // the same float64 values log_probs() gives, without a [N, C] float64 pass per candidate.
    at::Tensor ref_logits = reference.logits(index);
    at::Tensor logits = logits_q_of(index);
    if (ref_logits.scalar_type() != logits.scalar_type()) throw_runtime("divergence: reference and candidate logits differ in type");
    int64_t width = logits.size(1);
    for_each_row(logits, [&](int64_t r, const auto* row) {
      using Scalar = std::remove_cv_t<std::remove_pointer_t<decltype(row)>>;
      const Scalar* ref_row = ref_logits.data_ptr<Scalar>() + r * width;
      total[size_t(r)] += kind == Kind::kKl ? kernels::kl_row(ref_row, lse_p[r], row, lse[r], width)
                                            : kernels::js_row(ref_row, lse_p[r], row, lse[r], width);
    });
  }
  if (row_weights.defined()) return row_mean(at::tensor(total, at::kDouble), row_weights);
  double mean = 0;
  for (double t : total) mean += t;
  return mean / double(total.size());
}

double vocabulary_divergence(Kind kind, const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& w,
                             const at::Tensor& valid, int64_t chunk, VocabularyKernel kernel, const at::Tensor& row_weights) {
  return vocabulary_divergence(kind, VocabularyReference(valid_rows(x_ref, valid), w, chunk, 0, kernel),
                               valid_rows(x_cand, valid), row_weights);
}

}  // namespace

VocabularyReference::VocabularyReference(at::Tensor x_rows, at::Tensor head_weight, int64_t vocab_chunk,
                                         int64_t keep_bytes, VocabularyKernel kernel)
    : x_(std::move(x_rows)), w_(std::move(head_weight)), chunk_(vocab_chunk), kernel_(resolve(kernel, x_)) {
  if (chunk_ < 1) throw_runtime("vocab_chunk must be positive");
  if (x_.size(0) == 0) throw_bad_input("no valid calibration tokens to measure a divergence on");
  const bool keep = vocabulary_reference_bytes(x_.size(0), w_.size(0), w_.scalar_type()) <= keep_bytes;
  lse_ = chunked_logsumexp(x_, w_, chunk_, kernel_, keep ? &kept_ : nullptr).unsqueeze(1);
}

at::Tensor VocabularyReference::logits(int64_t index) const {
  return kept_.empty() ? chunk_logits(x_, w_, chunk_, index) : kept_[size_t(index)];
}

at::Tensor VocabularyReference::log_probs(int64_t index) const { return logits(index).to(at::kDouble) - lse_; }

int64_t vocabulary_reference_bytes(int64_t rows, int64_t vocab, at::ScalarType head_dtype) {
  return rows * vocab * (head_dtype == at::kDouble ? 8 : 4);  // chunk_logits: at least float32
}

int64_t VocabularyReference::kept_bytes() const {
  int64_t bytes = 0;
  for (const at::Tensor& t : kept_) bytes += int64_t(t.nbytes());
  return bytes;
}

at::Tensor divergence_row_weights(const at::Tensor& mask, DivergenceMean mean) {
  if (mean == DivergenceMean::kToken) return {};
  at::Tensor valid = mask.to(at::kCPU, at::kDouble).ne(0).to(at::kDouble);  // [B, T]
  at::Tensor lengths = valid.sum(1, /*keepdim=*/true);
  const double sequences = lengths.gt(0).sum().item<double>();
  if (sequences == 0) throw_bad_input("no valid calibration tokens to measure a divergence on");
  at::Tensor per_token = valid / (lengths.clamp_min(1) * sequences);
  return per_token.flatten().index_select(0, valid.flatten().nonzero().squeeze(1));
}

double js_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows, const at::Tensor& row_weights) {
  return vocabulary_divergence(Kind::kJs, reference, x_cand_rows, row_weights);
}

double kl_logits(const VocabularyReference& reference, const at::Tensor& x_cand_rows, const at::Tensor& row_weights) {
  return vocabulary_divergence(Kind::kKl, reference, x_cand_rows, row_weights);
}

double js_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk, VocabularyKernel kernel, const at::Tensor& row_weights) {
  return vocabulary_divergence(Kind::kJs, x_ref, x_cand, head_weight, valid, vocab_chunk, kernel, row_weights);
}

double kl_logits(const at::Tensor& x_ref, const at::Tensor& x_cand, const at::Tensor& head_weight,
                 const at::Tensor& valid, int64_t vocab_chunk, VocabularyKernel kernel, const at::Tensor& row_weights) {
  return vocabulary_divergence(Kind::kKl, x_ref, x_cand, head_weight, valid, vocab_chunk, kernel, row_weights);
}

at::Tensor prepare_hidden_reference(DivergenceKind kind, const at::Tensor& h_ref, const at::Tensor& valid) {
  at::Tensor rows = valid_rows(h_ref, valid).to(at::kDouble);
  switch (kind) {
    case DivergenceKind::kJsHidden: {
      at::Tensor log_p = at::log_softmax(rows, 1);
      return at::stack({log_p, log_p.exp()}, 1);
    }
    case DivergenceKind::kMse:
    case DivergenceKind::kCosine: return rows;
    default: throw_runtime("prepare_hidden_reference: not a hidden-state divergence");
  }
}

double hidden_divergence(DivergenceKind kind, const at::Tensor& prepared, const at::Tensor& h_cand, const at::Tensor& valid,
                         const at::Tensor& row_weights) {
  if (kind == DivergenceKind::kJsHidden && h_cand.is_cpu()) {
    // The candidate's log-softmax formed inside the JS loop, from its float32 or float64 rows.
    at::Tensor q = valid_rows(h_cand, valid).contiguous();
    if (q.scalar_type() != at::kFloat && q.scalar_type() != at::kDouble) q = q.to(at::kDouble);
    const at::Tensor reference = prepared.contiguous();  // [N, 2, D] float64: log_p, p
    const double* reference_rows = reference.data_ptr<double>();
    at::Tensor js = at::empty({q.size(0)}, at::kDouble);
    double* out = js.data_ptr<double>();
    const int64_t width = q.size(1);
    for_each_row(q, [&](int64_t r, const auto* row) {
      thread_local std::vector<double> exps;  // the candidate row's e^(q - top), for its probabilities
      exps.resize(size_t(width));
      double top = kernels::row_max(row, width);
      double lse_q = top + std::log(kernels::sum_exp_row(row, top, width, exps.data()));
      const double* log_p = reference_rows + r * 2 * width;
      out[r] = kernels::js_row(log_p, log_p + width, row, lse_q, exps.data(), std::exp(top - lse_q), width);
    });
    return row_mean(js, row_weights);
  }
  at::Tensor rows = valid_rows(h_cand, valid).to(at::kDouble);
  switch (kind) {
    case DivergenceKind::kJsHidden: {
      at::Tensor log_p = prepared.select(1, 0), log_q = at::log_softmax(rows, 1);
      at::Tensor log_m = at::logaddexp(log_p, log_q) - std::log(2.0);
      return row_mean(0.5 * (prepared.select(1, 1) * (log_p - log_m) + log_q.exp() * (log_q - log_m)).sum(1), row_weights);
    }
    case DivergenceKind::kMse:  // the plain mean over rows and D in one reduction, as before weights existed
      return row_weights.defined() ? row_mean((prepared - rows).pow(2).mean(1), row_weights)
                                   : (prepared - rows).pow(2).mean().item<double>();
    case DivergenceKind::kCosine: return row_mean(1 - at::cosine_similarity(prepared, rows, 1, 1e-12), row_weights);
    default: throw_runtime("hidden_divergence: not a hidden-state divergence");
  }
}

double js_hidden(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  return hidden_divergence(DivergenceKind::kJsHidden, prepare_hidden_reference(DivergenceKind::kJsHidden, h_ref, valid), h_cand, valid);
}

double mse(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  return hidden_divergence(DivergenceKind::kMse, prepare_hidden_reference(DivergenceKind::kMse, h_ref, valid), h_cand, valid);
}

double cosine_distance(const at::Tensor& h_ref, const at::Tensor& h_cand, const at::Tensor& valid) {
  return hidden_divergence(DivergenceKind::kCosine, prepare_hidden_reference(DivergenceKind::kCosine, h_ref, valid), h_cand, valid);
}

NllSum next_token_nll(const at::Tensor& x, const at::Tensor& head_weight, const at::Tensor& ids,
                      const at::Tensor& mask, int64_t vocab_chunk, VocabularyKernel kernel) {
  int64_t B = x.size(0), T = x.size(1);
  if (T < 2) return {};
  at::Tensor valid = mask.defined() ? mask.to(x.device(), at::kBool)
                                    : at::ones({B, T}, at::TensorOptions().dtype(at::kBool).device(x.device()));
  at::Tensor counted = (valid.narrow(1, 0, T - 1) & valid.narrow(1, 1, T - 1)).flatten();
  at::Tensor rows = valid_rows(x.narrow(1, 0, T - 1).reshape({-1, x.size(2)}), counted);
  at::Tensor targets = valid_rows(ids.to(x.device()).narrow(1, 1, T - 1).reshape({-1, 1}), counted).squeeze(1);
  if (rows.size(0) == 0) return {};
  at::Tensor lse = chunked_logsumexp(rows, head_weight, vocab_chunk, resolve(kernel, rows));
  at::Tensor target_logit = (widened(rows) * widened(head_weight.index_select(0, targets))).sum(1).to(at::kDouble);
  return NllSum{(lse - target_logit).sum().item<double>(), rows.size(0)};
}

}  // namespace cdmoe::eval
