// The learning-rate schedule of fine-tuning: linear warmup lr·(s+1)/warmup over `warmup_steps`
// (the first step already learns), then cosine or linear decay towards floor·lr, reached one
// step after the last (as transformers' schedules), or constant.
// Steps are 0-based optimizer steps; learning_rate(s) is the rate step s updates with.
// Torch-free; a pure function, so a resumed run recomputes it from the step alone.
#pragma once

#include <cstdint>
#include <string>

namespace cdmoe::finetune {

enum class Decay { kCosine, kLinear, kConstant };

Decay decay_named(const std::string& name);  // "cosine", "linear", "constant"; else bad input naming --decay

struct Schedule {
  double lr = 1e-5;
  int64_t warmup_steps = 0;
  Decay decay = Decay::kCosine;
  double floor = 0.0;       // fraction of lr reached at the last step
  int64_t total_steps = 1;  // optimizer steps of the whole run
};

double learning_rate(const Schedule& schedule, int64_t step);

}  // namespace cdmoe::finetune
