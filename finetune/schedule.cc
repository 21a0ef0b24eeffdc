#include "finetune/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace cdmoe::finetune {

Decay decay_named(const std::string& name) {
  if (name == "cosine") return Decay::kCosine;
  if (name == "linear") return Decay::kLinear;
  if (name == "constant") return Decay::kConstant;
  throw_bad_input("--decay: \"" + name + "\" is not one of cosine, linear, constant");
}

double learning_rate(const Schedule& s, int64_t step) {
  if (step < s.warmup_steps) return s.lr * double(step + 1) / double(s.warmup_steps);
  if (s.decay == Decay::kConstant) return s.lr;
  // Progress 0 at the first step after warmup and 1 one step after the last (as transformers'
  // schedules), so the last step still learns.
  const int64_t span = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
  const double progress = std::min(1.0, double(step - s.warmup_steps) / double(span));
  const double shape = s.decay == Decay::kCosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return s.lr * (s.floor + (1.0 - s.floor) * shape);
}

}  // namespace cdmoe::finetune
