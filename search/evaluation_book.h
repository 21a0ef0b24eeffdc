// EvaluationBook: every evaluation a strategy asked for, keyed by (objective metric, canonical
// plan), and the values that came back. Decisions wait on rounds (a list of candidates whose
// values one greedy step needs). A value may arrive before anyone asks for it (a result
// replayed on resume) and an evaluation asked for twice, by any stage, is handed out once.
// Cost: O(1) hash lookups per candidate plus one canonical-JSON rendering of its plan.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "search/candidate.h"

namespace cdmoe::search {

class EvaluationBook {
 public:
  using RoundId = int;

  // Asks for the values of `candidates`; those known are filled in at once.
  RoundId open_round(std::vector<Candidate> candidates);
  bool complete(RoundId round) const { return rounds_[size_t(round)].missing == 0; }
  const std::vector<Candidate>& candidates(RoundId round) const { return rounds_[size_t(round)].candidates; }
  const std::vector<double>& values(RoundId round) const { return rounds_[size_t(round)].values; }

  // Stores a value (+inf for a failed evaluation); a second value for the same key is ignored.
  void record(const Objective& objective, const Plan& plan, double value);
  // Candidates asked for, still unknown and not handed out before, in the order asked (a value
  // may arrive between asking and handing out: a replayed result).
  std::vector<Candidate> take_new();

 private:
  struct Round {
    std::vector<Candidate> candidates;
    std::vector<double> values;
    int missing = 0;
  };
  // One per distinct (objective, plan): asked for, answered, or both.
  struct Evaluation {
    bool known = false;
    bool asked = false;
    double value = 0;
    std::vector<std::pair<RoundId, size_t>> waiting;  // round entries to fill when the value comes
  };
  static std::string key_of(const Objective& objective, const Plan& plan);

  std::vector<Round> rounds_;
  std::unordered_map<std::string, Evaluation> evaluations_;  // nodes are stable: queued_ points in
  struct Queued {
    const Evaluation* evaluation;
    RoundId round;
    size_t index;
  };
  std::vector<Queued> queued_;
};

// Successive halving inside a round (ARCHITECTURE.md's early stopping): every candidate is first
// measured on a leading fraction of the calibration data; only those within `margin`
// (relative) of the best screen are measured in full. Off when fraction is 0.
struct Screening {
  double fraction = 0;
  double margin = 0.05;
};

// One greedy decision: the values of a list of candidates, screened or not.
class DecisionRound {
 public:
  DecisionRound(EvaluationBook& book, std::vector<Candidate> candidates, const Screening& screening);
  // Moves to the next phase when the current one is complete; true when it changed something.
  bool advance();
  bool complete() const { return phase_ == Phase::kDone; }
  // Index of the lowest full value, the first on ties; stopped candidates never win.
  size_t winner() const;
  // Full values; +inf for candidates the screen stopped.
  const std::vector<double>& values() const { return values_; }
  const std::vector<Candidate>& candidates() const { return candidates_; }

 private:
  enum class Phase { kScreen, kFull, kDone };
  EvaluationBook& book_;
  std::vector<Candidate> candidates_;
  Screening screening_;
  Phase phase_ = Phase::kFull;
  EvaluationBook::RoundId round_ = -1;
  std::vector<size_t> measured_;  // indices measured in the current full phase
  std::vector<double> values_;
};

}  // namespace cdmoe::search
