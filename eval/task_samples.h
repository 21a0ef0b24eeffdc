// The per-item record of an evaluation's tasks (cdmoe-eval --samples FILE), so that two
// evaluations of the same items can be compared item by item (eval/paired_accuracy.h), as
// lm-evaluation-harness's --log_samples keeps them. One JSON object a line, in task then item
// order:
//   {"task": NAME, "item": I (0-based, the task's order), "gold": G,
//    "loglikelihoods": [one per choice: summed over the choice's tokens, nats],
//    "chosen": C, "acc": 0|1, and "chosen_norm", "acc_norm" where the task reports acc_norm}
// Reading refuses a bad line naming file:line and the field. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks.h"

namespace cdmoe::eval {

// One task's per-item log-likelihoods (one per choice), in item order, as an evaluation scored them.
struct TaskSamples {
  std::string task;
  std::vector<std::vector<double>> loglikelihoods;
};

// The JSON-lines text for `samples` (one entry per task of `tasks`, matched by name).
std::string samples_jsonl(const std::vector<Task>& tasks, const std::vector<TaskSamples>& samples);

struct SampleRecord {
  std::string task;
  int64_t item = 0;
  int64_t gold = 0;
  bool acc = false;
  bool has_acc_norm = false, acc_norm = false;
  std::string where;  // "file:line", for errors about this record
};
std::vector<SampleRecord> read_samples(const std::string& path);

}  // namespace cdmoe::eval
