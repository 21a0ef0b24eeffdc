#include "eval/tasks.h"

#include <cctype>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "eval/benchmark_tasks.h"

namespace cdmoe::eval {
namespace {

// A group's acc as lm-eval aggregates it with weight_by_size: members weighted by their sizes.
Accuracy aggregate(const std::vector<Accuracy>& members) {
  Accuracy group;
  double weighted = 0;
  for (const Accuracy& m : members) weighted += m.acc * double(m.items), group.items += m.items;
  group.acc = group.items ? weighted / double(group.items) : 0;
  group.acc_stderr = pooled_stderr(members);
  return group;
}

}  // namespace

std::string task_metric_prefix(const std::string& task_name) {
  std::string base = task_name.substr(task_name.find_last_of('/') + 1);
  if (base.size() > 6 && base.compare(base.size() - 6, 6, ".jsonl") == 0) base.resize(base.size() - 6);
  std::string prefix;
  for (char c : base) prefix += std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(static_cast<unsigned char>(c))) : '_';
  if (prefix.empty() || !std::isalpha(static_cast<unsigned char>(prefix[0]))) prefix = "task_" + prefix;
  return prefix.substr(0, 40);
}

std::vector<std::pair<std::string, std::string>> item_requests(const TaskItem& item) {
  std::vector<std::pair<std::string, std::string>> requests;
  for (const std::string& choice : item.choices) {
    // lm-eval's target_delimiter " " goes before the continuation in both forms.
    if (item.shared_continuation.empty()) {
      requests.emplace_back(item.context, " " + choice);
    } else {
      requests.emplace_back(item.context + choice, " " + item.shared_continuation);
    }
  }
  return requests;
}

int64_t count_code_points(const std::string& utf8, const std::string& where) {
  int64_t count = 0;
  for (size_t i = 0; i < utf8.size();) {
    unsigned char c = static_cast<unsigned char>(utf8[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > utf8.size()) throw_bad_input(where + " is not valid UTF-8 (byte " + std::to_string(i) + ")");
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(utf8[i + k]) >> 6) != 0x2) {
        throw_bad_input(where + " is not valid UTF-8 (byte " + std::to_string(i + k) + ")");
      }
    }
    i += length;
    ++count;
  }
  return count;
}

Task load_task(const std::string& spec, const std::string& benchmarks_dir, int64_t limit) {
  if (limit < 0) throw_bad_input("task item limit must be 0 (all) or positive, got " + std::to_string(limit));
  Task task;
  if (is_builtin_task(spec)) {
    task = load_builtin_task(spec, benchmarks_dir, limit);
  } else if (spec.size() > 6 && spec.compare(spec.size() - 6, 6, ".jsonl") == 0) {
    task = load_jsonl_task(spec, limit);
  } else {
    std::string names;
    for (const std::string& name : builtin_task_names()) names += name + ", ";
    throw_bad_input("unknown task \"" + spec + "\" (tasks: " + names + "or a FILE.jsonl)");
  }
  // Every loader refuses an empty file; this holds for any loader added later too.
  if (task.items.empty()) throw_bad_input("task " + spec + " holds no items");
  return task;
}

bool is_builtin_task(const std::string& spec) {
  for (const std::string& name : builtin_task_names()) {
    if (name == spec) return true;
  }
  return false;
}

Accuracy mean_stderr(const std::vector<double>& outcomes) {
  double n = double(outcomes.size()), mean = 0;
  for (double x : outcomes) mean += x / n;
  if (outcomes.size() < 2) return {mean, 0, int64_t(outcomes.size())};
  double variance = 0;
  for (double x : outcomes) variance += (x - mean) * (x - mean) / (n - 1);
  return {mean, std::sqrt(variance / n), int64_t(outcomes.size())};
}

double pooled_stderr(const std::vector<Accuracy>& members) {
  double numerator = 0, total = 0;
  for (const Accuracy& m : members) {
    numerator += double(m.items - 1) * m.acc_stderr * m.acc_stderr * double(m.items);
    total += double(m.items);
  }
  double dof = total - double(members.size());
  return dof > 0 ? std::sqrt(numerator / dof / total) : 0;
}

ItemChoice score_item(const Task& task, const TaskItem& item, const std::vector<double>& ll) {
  if (ll.size() != item.choices.size()) throw_runtime("score_item: one log-likelihood per choice");
  size_t best = 0, best_norm = 0;
  double best_norm_value = -INFINITY;
  for (size_t c = 0; c < ll.size(); ++c) {
    if (ll[c] > ll[best]) best = c;
    double length = double(count_code_points(item.choices[c], task.name));
    double normalised = ll[c] / std::max(length, 1.0);
    if (normalised > best_norm_value) best_norm_value = normalised, best_norm = c;
  }
  return {int(best), int(best_norm)};
}

TaskScores score_task(const Task& task, const std::vector<std::vector<double>>& loglikelihoods) {
  if (loglikelihoods.size() != task.items.size()) throw_runtime("score_task: one log-likelihood list per item");
  if (task.items.empty()) throw_runtime("score_task: task " + task.name + " has no items");
  std::vector<double> acc, acc_norm;
  std::map<std::string, std::vector<double>> by_subject;
  for (size_t i = 0; i < task.items.size(); ++i) {
    const TaskItem& item = task.items[i];
    ItemChoice choice = score_item(task, item, loglikelihoods[i]);
    acc.push_back(choice.chosen == item.gold);
    acc_norm.push_back(choice.chosen_norm == item.gold);
    if (!item.subject.empty()) by_subject[item.subject].push_back(acc.back());
  }
  TaskScores scores;
  Accuracy all = mean_stderr(acc), all_norm = mean_stderr(acc_norm);
  scores.acc = all.acc, scores.acc_stderr = all.acc_stderr, scores.items = all.items;
  scores.acc_norm = all_norm.acc, scores.acc_norm_stderr = all_norm.acc_stderr;
  if (by_subject.empty()) return scores;
  std::map<std::string, std::vector<Accuracy>> group_members;
  std::vector<Accuracy> leaves;
  for (const auto& [subject, outcomes] : by_subject) {
    scores.subjects[subject] = mean_stderr(outcomes);
    leaves.push_back(scores.subjects[subject]);
    auto group = task.subject_groups.find(subject);
    if (group == task.subject_groups.end()) throw_runtime("score_task: subject " + subject + " has no group");
    group_members[group->second].push_back(scores.subjects[subject]);
  }
  for (const auto& [group, members] : group_members) scores.groups[group] = aggregate(members);
  // lm-eval (v0.4.4 and later) aggregates a group of groups over its leaf tasks: the whole
  // task's standard error pools the subjects' (the size-weighted mean is the same either way).
  Accuracy whole = aggregate(leaves);
  scores.acc = whole.acc, scores.acc_stderr = whole.acc_stderr;
  return scores;
}

TaskAverage::TaskAverage(const std::string& spec) : spec_(spec) {
  if (spec == "acc") return;
  if (spec == "acc_norm") {
    all_norm_ = true;
    return;
  }
  std::istringstream entries(spec);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    size_t equals = entry.find('=');
    std::string task = entry.substr(0, equals), metric = equals == std::string::npos ? "" : entry.substr(equals + 1);
    if (task.empty() || (metric != "acc" && metric != "acc_norm")) {
      throw_bad_input("--task-average: entry \"" + entry + "\" is not TASK=acc or TASK=acc_norm (or give acc / acc_norm alone)");
    }
    per_task_[task] = metric;
  }
  if (per_task_.empty()) throw_bad_input("--task-average: empty (give acc, acc_norm or TASK=METRIC,...)");
}

std::string TaskAverage::metric_for(const std::string& task_prefix, bool reports_acc_norm) const {
  auto named = per_task_.find(task_prefix);
  std::string metric = named != per_task_.end() ? named->second : all_norm_ ? "acc_norm" : "acc";
  if (metric == "acc_norm" && !reports_acc_norm) {
    if (named != per_task_.end()) throw_bad_input("--task-average: task " + task_prefix + " reports no acc_norm (lm-eval reports acc only)");
    return "acc";
  }
  return metric;
}

void check_task_average(const std::string& spec, const std::vector<Task>& tasks) {
  TaskAverage average(spec);
  std::map<std::string, bool> prefixes;
  for (const Task& task : tasks) {
    prefixes[task_metric_prefix(task.name)] = task.reports_acc_norm;
    average.metric_for(task_metric_prefix(task.name), task.reports_acc_norm);
  }
  for (const auto& [task, metric] : average.named_tasks()) {
    if (!prefixes.count(task)) throw_bad_input("--task-average: task " + task + " is not among --tasks");
  }
}

}  // namespace cdmoe::eval
