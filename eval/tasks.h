// Zero-shot multiple-choice tasks as lm-evaluation-harness (v0.4.x task definitions) poses and
// scores them: items become (context, continuation) string pairs exactly as the harness's
// ConfigurableTask.construct_requests builds them, then per-choice summed log-likelihoods give
// acc / acc_norm with standard errors. Loaders refuse bad lines with the file and line number.
// Torch-free.
//   Built-in tasks (eval/benchmark_tasks.cc, read from a --benchmarks folder; file names and
//   prompts there): arc_challenge, arc_easy, boolq, piqa, rte, openbookqa, winogrande, mmlu,
//   hellaswag.
//   FILE.jsonl: {"context": ..., "choices": [...], "gold": i}, continuations " {choice}"
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cdmoe::eval {

struct TaskItem {
  std::string context;
  std::vector<std::string> choices;  // lm-eval's doc_to_choice, without the target delimiter
  int gold = 0;
  // Set for lm-eval's "multiple input" tasks (WinoGrande): the choices complete the context and
  // every choice is scored on this one continuation (partial scoring).
  std::string shared_continuation;
  std::string subject;  // MMLU's subject, e.g. "abstract_algebra"; empty elsewhere
};

struct Task {
  std::string name;
  std::vector<TaskItem> items;
  std::string content_hash;  // sha256 over the files read
  bool reports_acc_norm = true;  // lm-eval's metric_list for this task has acc_norm
  // Subject -> group (MMLU's stem / humanities / social_sciences / other); empty for other tasks.
  std::map<std::string, std::string> subject_groups;
};

// lm-eval's request strings for one item: (context, continuation) per choice, in choice order.
std::vector<std::pair<std::string, std::string>> item_requests(const TaskItem& item);

// `spec` is a built-in task name (read from `benchmarks_dir`) or a path ending in .jsonl.
// `limit` > 0 keeps the first `limit` items.
Task load_task(const std::string& spec, const std::string& benchmarks_dir, int64_t limit);
// The built-in task names, in the paper's order.
const std::vector<std::string>& builtin_task_names();
bool is_builtin_task(const std::string& spec);

// Unicode code points of valid UTF-8; bad input naming `where` otherwise.
int64_t count_code_points(const std::string& utf8, const std::string& where);

// lm-evaluation-harness's scoring from per-choice summed log-likelihoods: acc picks the
// largest, acc_norm the largest divided by the choice's length in code points; ties go to
// the first choice. Standard errors are those of a mean of 0/1 outcomes (sample variance).
// A task with subjects also gets one entry per subject and per group, and its own acc is the
// size-weighted mean over its subjects with their pooled standard error (lm-eval's group
// aggregation, weight_by_size, over the leaf tasks: the mean over all items).
struct Accuracy {
  double acc = 0, acc_stderr = 0;
  int64_t items = 0;
};
struct TaskScores {
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;
  int64_t items = 0;
  std::map<std::string, Accuracy> subjects, groups;
};
TaskScores score_task(const Task& task, const std::vector<std::vector<double>>& loglikelihoods);

// One item under that scoring: the choice acc picks and the one acc_norm picks.
struct ItemChoice {
  int chosen = 0, chosen_norm = 0;
};
ItemChoice score_item(const Task& task, const TaskItem& item, const std::vector<double>& loglikelihoods);

// The mean of `outcomes` and the standard error of that mean (sample standard deviation, as
// lm-eval's stderr); 0 for fewer than two.
Accuracy mean_stderr(const std::vector<double>& outcomes);

// lm-eval's pooled_sample_stderr: the standard error of a group from its members' standard
// errors and sizes.
double pooled_stderr(const std::vector<Accuracy>& members);

// Which metric of each task enters task_acc_mean (--task-average): "acc" (every task's acc),
// "acc_norm" (acc_norm where the task reports it, acc elsewhere), or a list
// "TASK=METRIC,..." over the default acc. Bad input names the entry.
class TaskAverage {
 public:
  explicit TaskAverage(const std::string& spec = "acc");
  // "acc" or "acc_norm" for the task with this metric prefix.
  std::string metric_for(const std::string& task_prefix, bool reports_acc_norm) const;
  const std::string& spec() const { return spec_; }
  const std::map<std::string, std::string>& named_tasks() const { return per_task_; }

 private:
  std::string spec_;
  bool all_norm_ = false;
  std::map<std::string, std::string> per_task_;
};

// Bad input unless `spec` is a valid TaskAverage whose named tasks are among `tasks` and
// report the metric named for them.
void check_task_average(const std::string& spec, const std::vector<Task>& tasks);

// A task's name as a metric-name prefix: "piqa", or a file's base name made lower_snake_case.
std::string task_metric_prefix(const std::string& task_name);

}  // namespace cdmoe::eval
