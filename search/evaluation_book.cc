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
    Evaluation& evaluation = evaluations_[key_of(candidates[i].objective, candidates[i].plan)];
    if (evaluation.known) {
      round.values[i] = evaluation.value;
      continue;
    }
    ++round.missing;
    evaluation.waiting.emplace_back(id, i);
    if (!evaluation.asked) {
      evaluation.asked = true;
      queued_.push_back(Queued{&evaluation, id, i});
    }
  }
  round.candidates = std::move(candidates);
  rounds_.push_back(std::move(round));
  return id;
}

void EvaluationBook::record(const Objective& objective, const Plan& plan, double value) {
  Evaluation& evaluation = evaluations_[key_of(objective, plan)];
  if (evaluation.known) return;
  evaluation.known = true;
  evaluation.value = value;
  for (auto [round, index] : evaluation.waiting) {
    rounds_[size_t(round)].values[index] = value;
    --rounds_[size_t(round)].missing;
  }
  evaluation.waiting = {};
}

std::vector<Candidate> EvaluationBook::take_new() {
  std::vector<Candidate> fresh;
  fresh.reserve(queued_.size());
  for (const Queued& q : queued_) {
    if (!q.evaluation->known) fresh.push_back(rounds_[size_t(q.round)].candidates[q.index]);
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
