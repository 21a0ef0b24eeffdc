#include "eval/loglikelihood.h"

#include <algorithm>
#include <map>
#include <numeric>

#include <ATen/ATen.h>

#include "core/error.h"

namespace cdmoe::eval {
namespace {

// A packed row longer than this (and longer than its longest request alone) is split: attention
// costs T² per row.
constexpr int64_t kPackedRowTokens = 512;

// One forward row: a context, then one segment per distinct continuation of that context or of
// any prefix of it (the continuation's tokens but the last), each segment seeing its context
// and itself, at the positions it would have after its context alone.
struct Segment {
  size_t request;
  int64_t context, begin, length;  // context: the tokens of the row it sees; begin: its first slot
};
struct Row {
  std::vector<int64_t> tokens, positions;
  std::vector<Segment> segments;
};

bool is_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

std::vector<Row> pack_rows(const std::vector<ContinuationRequest>& requests, std::vector<size_t>& same_as) {
  std::map<std::vector<int64_t>, std::vector<size_t>> by_context;  // context -> distinct requests
  std::map<std::pair<std::vector<int64_t>, std::vector<int64_t>>, size_t> first_of;
  same_as.assign(requests.size(), SIZE_MAX);
  for (size_t r = 0; r < requests.size(); ++r) {
    const ContinuationRequest& request = requests[r];
    if (request.context.empty() || request.continuation.empty()) {
      throw_bad_input("request " + std::to_string(r) + ": context and continuation need at least one token each");
    }
    auto [it, inserted] = first_of.emplace(std::make_pair(request.context, request.continuation), r);
    if (inserted) {
      by_context[request.context].push_back(r);
    } else {
      same_as[r] = it->second;
    }
  }
  // In sorted order a context that is a prefix of another is a prefix of the next one, so
  // walking backwards each context joins the row of the longest context it begins.
  std::vector<Row> rows;
  const std::vector<int64_t>* host = nullptr;
  Row* row = nullptr;
  for (auto it = by_context.rbegin(); it != by_context.rend(); ++it) {
    const std::vector<int64_t>& context = it->first;
    bool joins = host != nullptr && is_prefix(context, *host);
    if (!joins) host = &context;
    for (size_t r : it->second) {
      int64_t extra = int64_t(requests[r].continuation.size()) - 1;
      int64_t alone = int64_t(host->size()) + extra;
      if (!joins || int64_t(row->tokens.size()) + extra > std::max(kPackedRowTokens, alone)) {
        rows.emplace_back();
        row = &rows.back();
        row->tokens = *host;
        row->positions.resize(host->size());
        std::iota(row->positions.begin(), row->positions.end(), 0);
        joins = true;
      }
      row->segments.push_back({r, int64_t(context.size()), int64_t(row->tokens.size()), extra});
      for (int64_t i = 0; i < extra; ++i) {
        row->tokens.push_back(requests[r].continuation[size_t(i)]);
        row->positions.push_back(int64_t(context.size()) + i);
      }
    }
  }
  return rows;
}

}  // namespace

std::vector<ContinuationScore> continuation_loglikelihoods(const model::MoeModel& model, const Plan& plan,
                                                           const std::vector<ContinuationRequest>& requests,
                                                           int64_t batch_size,
                                                           const std::function<void(int64_t done)>& on_progress) {
  std::vector<size_t> same_as;
  std::vector<Row> rows = pack_rows(requests, same_as);
  // Longest first, so a batch pads little.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].tokens.size() > rows[b].tokens.size(); });

  std::vector<ContinuationScore> scores(requests.size());
  int64_t done = 0;
  const int layers = int(model.shape().num_layers);
  for (size_t first = 0; first < order.size(); first += size_t(batch_size)) {
    size_t last = std::min(order.size(), first + size_t(batch_size));
    int64_t width = int64_t(rows[order[first]].tokens.size()), count = int64_t(last - first);
    at::Tensor ids = at::zeros({count, width}, at::kLong), positions = at::zeros({count, width}, at::kLong);
    at::Tensor visible = at::zeros({count, width, width}, at::kBool), valid = at::zeros({count, width}, at::kBool);
    // The slots whose hidden state predicts a continuation token, and that token.
    std::vector<int64_t> slots, targets;
    std::vector<std::pair<size_t, int64_t>> spans;  // (request, its continuation's length)
    for (size_t b = first; b < last; ++b) {
      const Row& row = rows[order[b]];
      int64_t n = int64_t(row.tokens.size()), at_row = int64_t(b - first);
      ids[at_row].narrow(0, 0, n).copy_(at::tensor(row.tokens, at::kLong));
      positions[at_row].narrow(0, 0, n).copy_(at::tensor(row.positions, at::kLong));
      valid[at_row].narrow(0, 0, n).fill_(true);
      int64_t host = row.segments.empty() ? n : row.segments.front().begin;  // the context's length
      visible[at_row].narrow(0, 0, host).narrow(1, 0, host).copy_(at::ones({host, host}, at::kBool).tril());
      for (const Segment& s : row.segments) {
        if (s.length > 0) {
          at::Tensor queries = visible[at_row].narrow(0, s.begin, s.length);
          queries.narrow(1, 0, s.context).fill_(true);
          queries.narrow(1, s.begin, s.length).copy_(at::ones({s.length, s.length}, at::kBool).tril());
        }
        const std::vector<int64_t>& continuation = requests[s.request].continuation;
        for (size_t i = 0; i < continuation.size(); ++i) {
          int64_t slot = i == 0 ? s.context - 1 : s.begin + int64_t(i) - 1;
          slots.push_back(at_row * width + slot);
          targets.push_back(continuation[i]);
        }
        spans.emplace_back(s.request, int64_t(continuation.size()));
      }
    }
    model::MoeModel::TokenLayout layout{visible.to(model.device()), positions.to(model.device()), valid.to(model.device())};
    at::Tensor hidden = model.run_layers(model.embed(ids), layout, 0, layers, plan);
    // Only the slots that predict a continuation token go through the LM head.
    at::Tensor index = at::tensor(slots, at::kLong).to(model.device());
    at::Tensor picked = hidden.reshape({count * width, -1}).index_select(0, index);
    at::Tensor log_probs = at::log_softmax(model.head(picked), -1);  // [slots, V], float32
    at::Tensor target = at::tensor(targets, at::kLong).to(model.device());
    at::Tensor token_ll = log_probs.gather(1, target.unsqueeze(1)).squeeze(1).to(at::kDouble).cpu();
    at::Tensor token_greedy = log_probs.argmax(1).eq(target).cpu();
    const double* ll = token_ll.data_ptr<double>();
    const bool* greedy = token_greedy.data_ptr<bool>();
    int64_t at_slot = 0;
    for (auto [r, n] : spans) {
      ContinuationScore score{0, true};
      for (int64_t i = 0; i < n; ++i, ++at_slot) {
        score.loglikelihood += ll[at_slot];
        score.greedy = score.greedy && greedy[at_slot];
      }
      scores[r] = score;
    }
    done += int64_t(spans.size());
    if (on_progress) on_progress(done);
  }
  for (size_t r = 0; r < requests.size(); ++r) {
    if (same_as[r] != SIZE_MAX) scores[r] = scores[same_as[r]];
  }
  if (on_progress && done < int64_t(requests.size())) on_progress(int64_t(requests.size()));
  return scores;
}

}  // namespace cdmoe::eval
