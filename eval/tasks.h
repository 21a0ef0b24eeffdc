// Zero-shot multiple-choice tasks as lm-evaluation-harness poses them (data/benchmarks/
// README.md): a context and continuations, one of which is gold. Loaders refuse bad lines with
// the file and line number. Torch-free.
//   piqa:       "Question: {goal}\nAnswer:" + " {sol1}" / " {sol2}"; gold from the .lst file
//   arc_easy:   "Question: {question}\nAnswer:" + " {choice}" for A, B, C, D; gold = answer
//   FILE.jsonl: {"context": ..., "choices": [...], "gold": i}, continuations " {choice}"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cdmoe::eval {

struct TaskItem {
  std::string context;
  std::vector<std::string> choices;  // without the leading space (acc_norm counts these)
  int gold = 0;
};

struct Task {
  std::string name;
  std::vector<TaskItem> items;
  std::string content_hash;  // sha256 over the files read
};

// `spec` is piqa, arc_easy (read from `benchmarks_dir`) or a path ending in .jsonl. `limit` > 0
// keeps the first `limit` items.
Task load_task(const std::string& spec, const std::string& benchmarks_dir, int64_t limit);

// Unicode code points of valid UTF-8; bad input naming `where` otherwise.
int64_t count_code_points(const std::string& utf8, const std::string& where);

// lm-evaluation-harness's scoring from per-choice summed log-likelihoods: acc picks the
// largest, acc_norm the largest divided by the choice's length in code points; ties go to
// the first choice. Standard errors are those of a mean of 0/1 outcomes (sample variance).
struct TaskScores {
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;
  int64_t items = 0;
};
TaskScores score_task(const Task& task, const std::vector<std::vector<double>>& loglikelihoods);

}  // namespace cdmoe::eval
