#include "eval/paired_accuracy.h"

#include <cmath>
#include <map>

#include "core/error.h"

namespace cdmoe::eval {
namespace {

// One file's outcomes, by task (in first-seen order) and item index; every item once, 0..n-1.
struct Outcomes {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const SampleRecord*>> by_task;
};

Outcomes index_samples(const std::vector<SampleRecord>& records, const std::string& metric) {
  Outcomes out;
  for (const SampleRecord& r : records) {
    if (metric == "acc_norm" && !r.has_acc_norm) throw_bad_input(r.where + ": has no acc_norm (its task does not report it)");
    auto& items = out.by_task[r.task];
    if (items.empty()) out.order.push_back(r.task);
    if (size_t(r.item) >= items.size()) items.resize(size_t(r.item) + 1, nullptr);
    if (items[size_t(r.item)]) {
      throw_bad_input(r.where + ": item " + std::to_string(r.item) + " of task " + r.task + " appears again (first at " +
                      items[size_t(r.item)]->where + ")");
    }
    items[size_t(r.item)] = &r;
  }
  for (const auto& [task, items] : out.by_task) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i]) throw_bad_input(items.back()->where + ": task " + task + " has item " + std::to_string(items.size() - 1) +
                                     " but no item " + std::to_string(i));
    }
  }
  return out;
}

}  // namespace

PairedDifference paired_difference(const std::string& task, const std::vector<bool>& a, const std::vector<bool>& b) {
  if (a.size() != b.size()) throw_runtime("paired_difference: outcomes of different lengths");
  std::vector<double> xa(a.begin(), a.end()), xb(b.begin(), b.end()), d;
  PairedDifference out{task, int64_t(a.size())};
  for (size_t i = 0; i < a.size(); ++i) {
    d.push_back(xb[i] - xa[i]);
    out.only_a += a[i] && !b[i];
    out.only_b += b[i] && !a[i];
  }
  Accuracy in_a = mean_stderr(xa), in_b = mean_stderr(xb);
  out.acc_a = in_a.acc, out.acc_b = in_b.acc;
  out.difference = out.acc_b - out.acc_a;
  out.stderr_paired = mean_stderr(d).acc_stderr;
  out.stderr_unpaired = std::hypot(in_a.acc_stderr, in_b.acc_stderr);
  return out;
}

std::vector<PairedDifference> compare_samples(const std::vector<SampleRecord>& a, const std::string& a_name,
                                              const std::vector<SampleRecord>& b, const std::string& b_name,
                                              const std::string& metric) {
  if (metric != "acc" && metric != "acc_norm") throw_bad_input("--metric must be acc or acc_norm, got \"" + metric + "\"");
  Outcomes in_a = index_samples(a, metric), in_b = index_samples(b, metric);
  for (const std::string& task : in_b.order) {
    if (!in_a.by_task.count(task)) throw_bad_input(in_b.by_task[task][0]->where + ": task " + task + " is not in " + a_name);
  }
  std::vector<PairedDifference> out;
  for (const std::string& task : in_a.order) {
    auto found = in_b.by_task.find(task);
    if (found == in_b.by_task.end()) throw_bad_input(b_name + ": has no samples of task " + task + ", which " + a_name + " has");
    const auto& items_a = in_a.by_task[task];
    const auto& items_b = found->second;
    if (items_a.size() != items_b.size()) {
      throw_bad_input(b_name + ": task " + task + " has " + std::to_string(items_b.size()) + " items, " + a_name + " " +
                      std::to_string(items_a.size()) + ": not the same items");
    }
    std::vector<bool> outcomes_a, outcomes_b;
    for (size_t i = 0; i < items_a.size(); ++i) {
      if (items_a[i]->gold != items_b[i]->gold) {
        throw_bad_input(items_b[i]->where + ": item " + std::to_string(i) + " of task " + task + " has gold " +
                        std::to_string(items_b[i]->gold) + ", " + items_a[i]->where + " has " +
                        std::to_string(items_a[i]->gold) + ": not the same items");
      }
      outcomes_a.push_back(metric == "acc" ? items_a[i]->acc : items_a[i]->acc_norm);
      outcomes_b.push_back(metric == "acc" ? items_b[i]->acc : items_b[i]->acc_norm);
    }
    out.push_back(paired_difference(task, outcomes_a, outcomes_b));
  }
  return out;
}

}  // namespace cdmoe::eval
