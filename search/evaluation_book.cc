#include "search/evaluation_book.h"

#include <cmath>
#include <limits>

namespace cdmoe::search {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

}  // namespace

std::string EvaluationBook::key_of(const Objective& objective, const Plan& plan) {
  return objective.metric_name() + '\n' + plan.canonical();
}

EvaluationBook::RoundId EvaluationBook::open_round(std::vector<Candidate> candidates) {
  RoundId id = RoundId(rounds_.size());
  Round round;
  round.values.assign(candidates.size(), std::numeric_limits<double>::quiet_NaN());
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::string key = key_of(candidates[i].objective, candidates[i].plan);
    auto known = known_.find(key);
    if (known != known_.end()) {
      round.values[i] = known->second;
      continue;
    }
    ++round.missing;
    waiting_[key].emplace_back(id, i);
    if (asked_.insert(key).second) queued_.emplace_back(key, candidates[i]);
  }
  round.candidates = std::move(candidates);
  rounds_.push_back(std::move(round));
  return id;
}

void EvaluationBook::record(const Objective& objective, const Plan& plan, double value) {
  std::string key = key_of(objective, plan);
  if (!known_.emplace(key, value).second) return;
  auto waiting = waiting_.find(key);
  if (waiting == waiting_.end()) return;
  for (auto [round, index] : waiting->second) {
    rounds_[size_t(round)].values[index] = value;
    --rounds_[size_t(round)].missing;
  }
  waiting_.erase(waiting);
}

std::vector<Candidate> EvaluationBook::take_new() {
  std::vector<Candidate> fresh;
  for (auto& [key, candidate] : queued_) {
    if (!known_.count(key)) fresh.push_back(std::move(candidate));
  }
  queued_.clear();
  return fresh;
}

DecisionRound::DecisionRound(EvaluationBook& book, std::vector<Candidate> candidates, const Screening& screening)
    : book_(book), candidates_(std::move(candidates)), screening_(screening) {
  values_.assign(candidates_.size(), kInfinity);
  bool screen = screening_.fraction > 0 && screening_.fraction < 1 && candidates_.size() > 2;
  std::vector<Candidate> asked;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    Candidate candidate = candidates_[i];
    if (screen) {
      candidate.stage += "_screen";
      candidate.objective.calib_fraction = screening_.fraction;
    } else {
      measured_.push_back(i);
    }
    asked.push_back(std::move(candidate));
  }
  phase_ = screen ? Phase::kScreen : Phase::kFull;
  round_ = book_.open_round(std::move(asked));
}

bool DecisionRound::advance() {
  if (phase_ == Phase::kDone || !book_.complete(round_)) return false;
  const std::vector<double>& got = book_.values(round_);
  if (phase_ == Phase::kFull) {
    for (size_t j = 0; j < measured_.size(); ++j) values_[measured_[j]] = got[j];
    phase_ = Phase::kDone;
    return true;
  }
  // Screen done: keep those within the margin of the best screen, measure them in full.
  double best = kInfinity;
  for (double v : got) best = std::min(best, v);
  double limit = best + screening_.margin * std::fabs(best) + 1e-15;
  std::vector<Candidate> survivors;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (std::isfinite(got[i]) && got[i] <= limit) {
      measured_.push_back(i);
      survivors.push_back(candidates_[i]);
    }
  }
  phase_ = Phase::kFull;
  round_ = book_.open_round(std::move(survivors));
  return true;
}

size_t DecisionRound::winner() const {
  size_t best = 0;
  for (size_t i = 1; i < values_.size(); ++i) {
    if (values_[i] < values_[best]) best = i;
  }
  return best;
}

}  // namespace cdmoe::search
