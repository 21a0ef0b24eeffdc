// Two evaluations of the same task items compared item by item (cdmoe-paired): B's accuracy minus
// A's, with the standard error of the mean of the per-item differences d_i = b_i - a_i (each -1, 0
// or 1; sample variance, as lm-eval's stderr). Items both get right or both get wrong add
// nothing to it, so it is usually well below the unpaired sqrt(se_a^2 + se_b^2), which is also
// given. The 95% interval is difference +- 1.96 standard errors (normal approximation). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/task_samples.h"

namespace cdmoe::eval {

struct PairedDifference {
  std::string task;
  int64_t items = 0;
  double acc_a = 0, acc_b = 0;
  double difference = 0;  // acc_b - acc_a
  double stderr_paired = 0, stderr_unpaired = 0;
  int64_t only_a = 0, only_b = 0;  // items only A gets right, only B gets right
};

// Outcomes of one task's items, in the same item order for both.
PairedDifference paired_difference(const std::string& task, const std::vector<bool>& a, const std::vector<bool>& b);

// Per task of `a` (in its order), from two samples files (read_samples) of the same items: the
// same tasks, each item once, the same gold answer. `metric` is "acc" or "acc_norm". Bad input
// naming the file (and line) where they differ; `a_name`/`b_name` are the files' names.
std::vector<PairedDifference> compare_samples(const std::vector<SampleRecord>& a, const std::string& a_name,
                                              const std::vector<SampleRecord>& b, const std::string& b_name,
                                              const std::string& metric);

}  // namespace cdmoe::eval
