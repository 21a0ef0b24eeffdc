#include "eval/tasks.h"

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/sha256.h"

namespace cdmoe::eval {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

Json parse_line(const std::string& line, const std::string& where) {
  Json object = parse_json_text(line, where);
  if (!object.is_object()) throw_bad_input(where + ": expected a JSON object");
  return object;
}

void check_item(const TaskItem& item, const std::string& where) {
  if (item.choices.size() < 2) throw_bad_input(where + ": needs at least 2 choices, has " + std::to_string(item.choices.size()));
  if (item.gold < 0 || item.gold >= int(item.choices.size())) {
    throw_bad_input(where + ": gold " + std::to_string(item.gold) + " is out of range for " +
                    std::to_string(item.choices.size()) + " choices");
  }
  count_code_points(item.context, where + ": context");
  for (size_t c = 0; c < item.choices.size(); ++c) {
    // An empty continuation has no token to score: its log-likelihood 0 would beat every real one.
    if (item.choices[c].empty()) throw_bad_input(where + ": choice " + std::to_string(c) + " is empty");
    count_code_points(item.choices[c], where + ": choice");
  }
}

Task load_piqa(const std::string& dir, int64_t limit) {
  std::string path = dir + "/piqa_valid.jsonl", labels_path = dir + "/piqa_valid_labels.lst";
  std::string text = read_text_file(path), labels_text = read_text_file(labels_path);
  std::vector<std::string> lines = lines_of(text), labels = lines_of(labels_text);
  if (lines.size() != labels.size()) {
    throw_bad_input(labels_path + ": has " + std::to_string(labels.size()) + " labels for " +
                    std::to_string(lines.size()) + " lines of " + path);
  }
  Task task{"piqa", {}, sha256_hex(text + labels_text)};
  for (size_t i = 0; i < lines.size() && (limit <= 0 || int64_t(task.items.size()) < limit); ++i) {
    std::string where = path + ":" + std::to_string(i + 1);
    Json line = parse_line(lines[i], where);
    TaskItem item{"Question: " + require_string(line, "goal", where) + "\nAnswer:",
                  {require_string(line, "sol1", where), require_string(line, "sol2", where)}, 0};
    if (labels[i] != "0" && labels[i] != "1") throw_bad_input(labels_path + ":" + std::to_string(i + 1) + ": label is not 0 or 1");
    item.gold = labels[i] == "1";
    check_item(item, where);
    task.items.push_back(std::move(item));
  }
  return task;
}

Task load_arc_easy(const std::string& dir, int64_t limit) {
  std::string path = dir + "/arc_easy_test.jsonl";
  std::string text = read_text_file(path);
  Task task{"arc_easy", {}, sha256_hex(text)};
  std::vector<std::string> lines = lines_of(text);
  for (size_t i = 0; i < lines.size() && (limit <= 0 || int64_t(task.items.size()) < limit); ++i) {
    if (blank(lines[i])) continue;
    std::string where = path + ":" + std::to_string(i + 1);
    Json line = parse_line(lines[i], where);
    const Json& choices = require_field(line, "choices", where);
    std::string answer = require_string(line, "answer", where);
    TaskItem item{"Question: " + require_string(line, "question", where) + "\nAnswer:", {}, -1};
    for (const char* letter : {"A", "B", "C", "D"}) {
      item.choices.push_back(require_string(choices, letter, where + ": choices"));
      if (answer == letter) item.gold = int(item.choices.size()) - 1;
    }
    if (item.gold < 0) throw_bad_input(where + ": answer \"" + answer + "\" is not one of A, B, C, D");
    check_item(item, where);
    task.items.push_back(std::move(item));
  }
  return task;
}

Task load_jsonl(const std::string& path, int64_t limit) {
  std::string text = read_text_file(path);
  Task task{path, {}, sha256_hex(text)};
  std::vector<std::string> lines = lines_of(text);
  for (size_t i = 0; i < lines.size() && (limit <= 0 || int64_t(task.items.size()) < limit); ++i) {
    if (blank(lines[i])) continue;
    std::string where = path + ":" + std::to_string(i + 1);
    Json line = parse_line(lines[i], where);
    TaskItem item{require_string(line, "context", where), {}, int(require_int(line, "gold", where))};
    const Json& choices = require_field(line, "choices", where);
    if (!choices.is_array()) throw_bad_input(where + ": field 'choices' must be an array of strings");
    for (const Json& choice : choices) {
      if (!choice.is_string()) throw_bad_input(where + ": choice " + describe_json(choice) + " is not a string");
      item.choices.push_back(choice.get<std::string>());
    }
    check_item(item, where);
    task.items.push_back(std::move(item));
  }
  if (task.items.empty()) throw_bad_input(path + ": holds no items");
  return task;
}

// Mean and standard error of the mean of 0/1 outcomes (sample standard deviation).
std::pair<double, double> mean_stderr(const std::vector<double>& outcomes) {
  double n = double(outcomes.size()), mean = 0;
  for (double x : outcomes) mean += x / n;
  if (outcomes.size() < 2) return {mean, 0};
  double variance = 0;
  for (double x : outcomes) variance += (x - mean) * (x - mean) / (n - 1);
  return {mean, std::sqrt(variance / n)};
}

}  // namespace

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
  if (spec == "piqa") return load_piqa(benchmarks_dir, limit);
  if (spec == "arc_easy") return load_arc_easy(benchmarks_dir, limit);
  if (spec.size() > 6 && spec.compare(spec.size() - 6, 6, ".jsonl") == 0) return load_jsonl(spec, limit);
  throw_bad_input("unknown task \"" + spec + "\" (tasks: piqa, arc_easy, or a FILE.jsonl)");
}

TaskScores score_task(const Task& task, const std::vector<std::vector<double>>& loglikelihoods) {
  if (loglikelihoods.size() != task.items.size()) throw_runtime("score_task: one log-likelihood list per item");
  std::vector<double> acc, acc_norm;
  for (size_t i = 0; i < task.items.size(); ++i) {
    const TaskItem& item = task.items[i];
    const std::vector<double>& ll = loglikelihoods[i];
    size_t best = 0, best_norm = 0;
    double best_norm_value = -INFINITY;
    for (size_t c = 0; c < ll.size(); ++c) {
      if (ll[c] > ll[best]) best = c;
      double length = double(count_code_points(item.choices[c], task.name));
      double normalised = ll[c] / std::max(length, 1.0);
      if (normalised > best_norm_value) best_norm_value = normalised, best_norm = c;
    }
    acc.push_back(int(best) == item.gold);
    acc_norm.push_back(int(best_norm) == item.gold);
  }
  TaskScores scores;
  std::tie(scores.acc, scores.acc_stderr) = mean_stderr(acc);
  std::tie(scores.acc_norm, scores.acc_norm_stderr) = mean_stderr(acc_norm);
  scores.items = int64_t(task.items.size());
  return scores;
}

}  // namespace cdmoe::eval
