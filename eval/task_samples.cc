#include "eval/task_samples.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"

namespace cdmoe::eval {

std::string samples_jsonl(const std::vector<Task>& tasks, const std::vector<TaskSamples>& samples) {
  std::string text;
  for (const TaskSamples& sample : samples) {
    const Task* task = nullptr;
    for (const Task& t : tasks) task = t.name == sample.task ? &t : task;
    if (!task || task->items.size() != sample.loglikelihoods.size()) {
      throw_runtime("samples_jsonl: the samples of " + sample.task + " do not match its task");
    }
    for (size_t i = 0; i < task->items.size(); ++i) {
      const TaskItem& item = task->items[i];
      ItemChoice choice = score_item(*task, item, sample.loglikelihoods[i]);
      Json line = {{"task", task->name},
                   {"item", i},
                   {"gold", item.gold},
                   {"loglikelihoods", sample.loglikelihoods[i]},
                   {"chosen", choice.chosen},
                   {"acc", int(choice.chosen == item.gold)}};
      if (task->reports_acc_norm) {
        line["chosen_norm"] = choice.chosen_norm;
        line["acc_norm"] = int(choice.chosen_norm == item.gold);
      }
      text += line.dump() + "\n";
    }
  }
  return text;
}

namespace {

bool outcome(const Json& line, const std::string& key, const std::string& where) {
  int64_t value = require_int(line, key, where);
  if (value != 0 && value != 1) throw_bad_input(where + ": field '" + key + "' must be 0 or 1, got " + std::to_string(value));
  return value == 1;
}

}  // namespace

std::vector<SampleRecord> read_samples(const std::string& path) {
  std::vector<SampleRecord> records;
  for_each_json_line(read_text_file(path), path, [&](const Json& line, const std::string& where) {
    SampleRecord record;
    record.task = require_string(line, "task", where);
    record.item = require_int(line, "item", where);
    record.gold = require_int(line, "gold", where);
    if (record.item < 0) throw_bad_input(where + ": field 'item' must be 0 or more, got " + std::to_string(record.item));
    record.acc = outcome(line, "acc", where);
    record.has_acc_norm = line.contains("acc_norm");
    if (record.has_acc_norm) record.acc_norm = outcome(line, "acc_norm", where);
    record.where = where;
    records.push_back(std::move(record));
    return true;
  });
  if (records.empty()) throw_bad_input(path + ": holds no samples");
  // Items are numbered 0..n-1 within their task, so none can be past the file's own count: a
  // larger id is refused here, before anything is sized by it (10^12 was an allocation failure).
  for (const SampleRecord& r : records) {
    if (r.item >= int64_t(records.size())) {
      throw_bad_input(r.where + ": field 'item' is " + std::to_string(r.item) + ", past the file's " + std::to_string(records.size()) +
                      " samples");
    }
  }
  return records;
}

}  // namespace cdmoe::eval
