// Prompts follow lm-evaluation-harness v0.4.x (lm_eval/tasks/<task>/*.yaml and utils.py); each
// loader names the definition it mirrors. The file names a --benchmarks folder holds, and the
// one-line export commands, are in README.md ("The paper's eight tasks").
#include "eval/benchmark_tasks.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/sha256.h"
#include "eval/python_text.h"

namespace cdmoe::eval {
namespace {

namespace fs = std::filesystem;
using LineReader = std::function<TaskItem(const Json& line, const std::string& where)>;

// The lines of a text file, LF or CRLF (a file saved on Windows reads as the same lines).
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

void check_item(const TaskItem& item, const std::string& where) {
  if (item.choices.size() < 2) throw_bad_input(where + ": needs at least 2 choices, has " + std::to_string(item.choices.size()));
  if (item.gold < 0 || item.gold >= int(item.choices.size())) {
    throw_bad_input(where + ": gold " + std::to_string(item.gold) + " is out of range for " +
                    std::to_string(item.choices.size()) + " choices");
  }
  count_code_points(item.context, where + ": context");
  for (size_t c = 0; c < item.choices.size(); ++c) {
    // An empty continuation has no token to score: its log-likelihood 0 would beat every real one.
    if (item.choices[c].empty() && item.shared_continuation.empty()) {
      throw_bad_input(where + ": choice " + std::to_string(c) + " is empty");
    }
    count_code_points(item.choices[c], where + ": choice");
  }
}

bool has(const Json& line, const char* key) { return line.contains(key) && !line[key].is_null(); }

// A JSON array of strings at `key`.
std::vector<std::string> string_list(const Json& line, const std::string& key, const std::string& where) {
  const Json& list = require_field(line, key, where);
  if (!list.is_array()) throw_bad_input(where + ": field '" + key + "' must be an array of strings");
  std::vector<std::string> out;
  for (const Json& value : list) {
    if (!value.is_string()) throw_bad_input(where + ": field '" + key + "' holds " + describe_json(value) + ", not a string");
    out.push_back(value.get<std::string>());
  }
  return out;
}

// A choice index (a gold label): 0 .. 2^31 - 1, so it cannot wrap into a valid one.
int choice_index(int64_t value, const std::string& key, const std::string& where) {
  if (value < 0 || value > std::numeric_limits<int>::max()) {
    throw_bad_input(where + ": field '" + key + "' is " + std::to_string(value) + ", not a choice index");
  }
  return int(value);
}

// An integer label that may come as a number or a digit string (HF exports write HellaSwag's as "2").
int int_label(const Json& line, const std::string& key, const std::string& where) {
  const Json& value = require_field(line, key, where);
  if (value.is_number()) return choice_index(require_int(line, key, where), key, where);
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (!text.empty() && text.size() < 10 && std::all_of(text.begin(), text.end(), ::isdigit)) {
      return choice_index(std::stoll(text), key, where);
    }
  }
  throw_bad_input(where + ": field '" + key + "' must be an integer label, got " + describe_json(value));
}

// Items of a JSON-lines file, one per non-blank line, stopping at `limit` (> 0).
Task read_jsonl(const std::string& name, const std::string& path, int64_t limit, const LineReader& read) {
  std::string text = read_text_file(path);
  Task task{name, {}, sha256_hex(text), true, {}};
  for_each_json_line(text, path, [&](const Json& line, const std::string& where) {
    if (limit > 0 && int64_t(task.items.size()) >= limit) return false;
    TaskItem item = read(line, where);
    check_item(item, where);
    task.items.push_back(std::move(item));
    return true;
  });
  if (task.items.empty()) throw_bad_input(path + ": holds no items");
  return task;
}

// The first of `names` that exists in `dir`, or bad input naming what the task expects.
std::string find_file(const std::string& task, const std::string& dir, const std::vector<std::string>& names) {
  if (dir.empty()) throw_bad_input("task " + task + " needs --benchmarks DIR (or $CDMOE_BENCHMARKS_DIR) holding " + names[0]);
  for (const std::string& name : names) {
    if (fs::exists(dir + "/" + name)) return dir + "/" + name;
  }
  std::string expected = dir + "/" + names[0];
  for (size_t i = 1; i < names.size(); ++i) expected += " or " + names[i];  // in the same folder
  throw_bad_input("task " + task + ": expected " + expected + " (README.md, \"The paper's eight tasks\", has the export command)");
}

// ARC's (and OpenBookQA's) choices in the forms users have: HF {"text": [...], "label": [...]},
// AI2's original [{"text", "label"}], or {"A": text, ...}. Returns texts and labels.
std::pair<std::vector<std::string>, std::vector<std::string>> labelled_choices(const Json& choices, const std::string& where) {
  std::vector<std::string> texts, labels;
  if (choices.is_object() && choices.contains("text")) {
    texts = string_list(choices, "text", where + ": choices");
    labels = string_list(choices, "label", where + ": choices");
  } else if (choices.is_array()) {
    for (const Json& choice : choices) {
      texts.push_back(require_string(choice, "text", where + ": choices"));
      labels.push_back(require_string(choice, "label", where + ": choices"));
    }
  } else if (choices.is_object()) {
    for (const auto& [label, text] : choices.items()) {
      if (!text.is_string()) throw_bad_input(where + ": choice " + label + " is not a string");
      labels.push_back(label), texts.push_back(text.get<std::string>());
    }
  } else {
    throw_bad_input(where + ": field 'choices' must be {\"text\": [...], \"label\": [...]} or a list of {text, label}");
  }
  if (texts.size() != labels.size()) throw_bad_input(where + ": choices have " + std::to_string(texts.size()) + " texts and " + std::to_string(labels.size()) + " labels");
  return {texts, labels};
}

int label_index(const std::vector<std::string>& labels, const std::string& key, const std::string& where) {
  auto found = std::find(labels.begin(), labels.end(), key);
  if (found == labels.end()) throw_bad_input(where + ": answer \"" + key + "\" is not one of the choices' labels");
  return int(found - labels.begin());
}

// arc_easy.yaml / arc_challenge.yaml: "Question: {{question}}\nAnswer:", choices.text,
// target choices.label.index(answerKey).
Task load_arc(const std::string& name, const std::string& dir, int64_t limit) {
  std::string file = name == "arc_easy" ? "arc_easy_test.jsonl" : "arc_challenge_test.jsonl";
  std::string original = name == "arc_easy" ? "ARC-Easy-Test.jsonl" : "ARC-Challenge-Test.jsonl";
  return read_jsonl(name, find_file(name, dir, {file, original}), limit, [](const Json& line, const std::string& where) {
    const Json& question = require_field(line, "question", where);
    std::string stem = question.is_object() ? require_string(question, "stem", where + ": question") : require_string(line, "question", where);
    const Json& choices = question.is_object() ? require_field(question, "choices", where + ": question") : require_field(line, "choices", where);
    auto [texts, labels] = labelled_choices(choices, where);
    std::string answer = has(line, "answerKey") ? require_string(line, "answerKey", where) : require_string(line, "answer", where);
    return TaskItem{"Question: " + stem + "\nAnswer:", texts, label_index(labels, answer, where), "", ""};
  });
}

// super_glue/boolq/default.yaml: "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"].
Task load_boolq(const std::string& dir, int64_t limit) {
  Task task = read_jsonl("boolq", find_file("boolq", dir, {"boolq_validation.jsonl"}), limit, [](const Json& line, const std::string& where) {
    int gold = 0;
    if (has(line, "label")) {
      gold = int_label(line, "label", where);
    } else {
      const Json& answer = require_field(line, "answer", where);
      if (!answer.is_boolean()) throw_bad_input(where + ": field 'answer' must be true or false");
      gold = answer.get<bool>();
    }
    return TaskItem{require_string(line, "passage", where) + "\nQuestion: " + require_string(line, "question", where) + "?\nAnswer:",
                    {"no", "yes"}, gold, "", ""};
  });
  task.reports_acc_norm = false;
  return task;
}

// piqa/piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], target label. The original
// distribution keeps labels in a separate .lst file; HF exports keep them in the line.
Task load_piqa(const std::string& dir, int64_t limit) {
  std::string path = find_file("piqa", dir, {"piqa_valid.jsonl", "piqa_validation.jsonl"});
  std::string labels_path = dir + "/piqa_valid_labels.lst";
  bool separate_labels = path == dir + "/piqa_valid.jsonl";
  std::vector<std::string> labels;
  std::string labels_text;
  if (separate_labels) {
    labels_text = read_text_file(labels_path);
    labels = lines_of(labels_text);
    size_t lines = lines_of(read_text_file(path)).size();
    if (lines != labels.size()) {
      throw_bad_input(labels_path + ": has " + std::to_string(labels.size()) + " labels for " + std::to_string(lines) + " lines of " + path);
    }
  }
  size_t line_number = 0;
  Task task = read_jsonl("piqa", path, limit, [&](const Json& line, const std::string& where) {
    line_number = std::stoul(where.substr(where.rfind(':') + 1));
    TaskItem item{"Question: " + require_string(line, "goal", where) + "\nAnswer:",
                  {require_string(line, "sol1", where), require_string(line, "sol2", where)}, 0, "", ""};
    if (!separate_labels) {
      item.gold = int_label(line, "label", where);
    } else {
      const std::string& label = labels[line_number - 1];
      if (label != "0" && label != "1") throw_bad_input(labels_path + ":" + std::to_string(line_number) + ": label is not 0 or 1");
      item.gold = label == "1";
    }
    return item;
  });
  if (separate_labels) task.content_hash = sha256_hex(read_text_file(path) + labels_text);
  return task;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t end; (end = text.find(separator, start)) != std::string::npos; start = end + 1) fields.push_back(text.substr(start, end - start));
  fields.push_back(text.substr(start));
  return fields;
}

TaskItem rte_item(const std::string& sentence1, const std::string& sentence2, int gold) {
  // glue/rte/default.yaml: "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:",
  // ['True', 'False']; label 0 is entailment.
  return TaskItem{sentence1 + "\nQuestion: " + sentence2 + " True or False?\nAnswer:", {"True", "False"}, gold, "", ""};
}

// GLUE's original RTE/dev.tsv: a header "index sentence1 sentence2 label", unquoted fields.
Task load_rte_tsv(const std::string& path, int64_t limit) {
  std::string text = read_text_file(path);
  Task task{"rte", {}, sha256_hex(text), true, {}};
  std::vector<std::string> lines = lines_of(text);
  if (lines.empty()) throw_bad_input(path + ": holds no items");
  std::vector<std::string> header = split(lines[0], '\t');
  auto column = [&](const std::string& name) {
    auto found = std::find(header.begin(), header.end(), name);
    if (found == header.end()) throw_bad_input(path + ":1: header has no column '" + name + "'");
    return size_t(found - header.begin());
  };
  size_t s1 = column("sentence1"), s2 = column("sentence2"), label = column("label");
  for (size_t i = 1; i < lines.size() && (limit <= 0 || int64_t(task.items.size()) < limit); ++i) {
    if (blank(lines[i])) continue;
    std::string where = path + ":" + std::to_string(i + 1);
    std::vector<std::string> fields = split(lines[i], '\t');
    if (fields.size() != header.size()) throw_bad_input(where + ": has " + std::to_string(fields.size()) + " fields, the header " + std::to_string(header.size()));
    const std::string& value = fields[label];
    if (value != "entailment" && value != "not_entailment") throw_bad_input(where + ": label \"" + value + "\" is not entailment or not_entailment");
    TaskItem item = rte_item(fields[s1], fields[s2], value == "not_entailment");
    check_item(item, where);
    task.items.push_back(std::move(item));
  }
  if (task.items.empty()) throw_bad_input(path + ": holds no items");
  return task;
}

Task load_rte(const std::string& dir, int64_t limit) {
  std::string path = find_file("rte", dir, {"rte_validation.jsonl", "rte_dev.tsv"});
  Task task = path.size() > 4 && path.compare(path.size() - 4, 4, ".tsv") == 0
                  ? load_rte_tsv(path, limit)
                  : read_jsonl("rte", path, limit, [](const Json& line, const std::string& where) {
                      return rte_item(require_string(line, "sentence1", where), require_string(line, "sentence2", where),
                                      int_label(line, "label", where));
                    });
  task.reports_acc_norm = false;
  return task;
}

// openbookqa/openbookqa.yaml: question_stem alone, choices.text,
// target choices.label.index(answerKey.lstrip()).
Task load_openbookqa(const std::string& dir, int64_t limit) {
  return read_jsonl("openbookqa", find_file("openbookqa", dir, {"openbookqa_test.jsonl"}), limit, [](const Json& line, const std::string& where) {
    bool original = has(line, "question") && line["question"].is_object();
    std::string stem = original ? require_string(line["question"], "stem", where + ": question") : require_string(line, "question_stem", where);
    auto [texts, labels] = labelled_choices(original ? require_field(line["question"], "choices", where) : require_field(line, "choices", where), where);
    std::string answer = require_string(line, "answerKey", where);
    answer = python_lstrip(answer, where + ": answerKey");
    return TaskItem{stem, texts, label_index(labels, answer, where), "", ""};
  });
}

// winogrande/preprocess_winogrande.py: the blank's prefix plus each option is a context, the
// text after the blank (stripped) the one continuation; gold from answer "1" / "2".
Task load_winogrande(const std::string& dir, int64_t limit) {
  Task task = read_jsonl("winogrande", find_file("winogrande", dir, {"winogrande_validation.jsonl"}), limit, [](const Json& line, const std::string& where) {
    std::string sentence = require_string(line, "sentence", where), answer = require_string(line, "answer", where);
    size_t blank_at = sentence.find('_');
    if (blank_at == std::string::npos) throw_bad_input(where + ": sentence has no blank '_'");
    if (answer != "1" && answer != "2") throw_bad_input(where + ": answer \"" + answer + "\" is not \"1\" or \"2\"");
    std::string prefix = sentence.substr(0, blank_at), rest = python_strip(sentence.substr(blank_at + 1), where + ": sentence");
    if (rest.empty()) throw_bad_input(where + ": nothing follows the blank to score");
    return TaskItem{"", {prefix + require_string(line, "option1", where), prefix + require_string(line, "option2", where)}, answer == "2", rest, ""};
  });
  task.reports_acc_norm = false;
  return task;
}

// lm-eval's mmlu/_generate_configs.py subject categories.
const std::map<std::string, std::string>& mmlu_groups() {
  static const std::map<std::string, std::string> groups = [] {
    std::map<std::string, std::string> g;
    auto add = [&g](const std::string& group, std::initializer_list<const char*> subjects) {
      for (const char* s : subjects) g[s] = group;
    };
    add("stem", {"abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
                 "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
                 "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
                 "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning"});
    add("humanities", {"formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
                       "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios", "philosophy",
                       "prehistory", "professional_law", "world_religions"});
    add("social_sciences", {"econometrics", "high_school_geography", "high_school_government_and_politics",
                            "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology", "human_sexuality",
                            "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy"});
    add("other", {"business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging", "management", "marketing",
                  "medical_genetics", "miscellaneous", "nutrition", "professional_accounting", "professional_medicine", "virology"});
    return g;
  }();
  return groups;
}

// mmlu/default/_default_template_yaml plus each subject's description:
// "The following are multiple choice questions (with answers) about {subject}.\n\n" then
// "{{question.strip()}}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:", choices A-D, target answer.
TaskItem mmlu_item(const std::string& subject, const std::string& question, const std::vector<std::string>& choices, int gold,
                   const std::string& where) {
  if (!mmlu_groups().count(subject)) throw_bad_input(where + ": \"" + subject + "\" is not one of MMLU's 57 subjects");
  if (choices.size() != 4) throw_bad_input(where + ": has " + std::to_string(choices.size()) + " choices, MMLU has 4");
  std::string spaced = subject;
  std::replace(spaced.begin(), spaced.end(), '_', ' ');
  std::string context = "The following are multiple choice questions (with answers) about " + spaced + ".\n\n" + python_strip(question, where + ": question");
  const char* letters[] = {"A", "B", "C", "D"};
  for (int c = 0; c < 4; ++c) context += std::string("\n") + letters[c] + ". " + choices[size_t(c)];
  return TaskItem{context + "\nAnswer:", {"A", "B", "C", "D"}, gold, "", subject};
}

// RFC 4180 records (quoted fields may hold commas, doubled quotes and newlines, LF or CRLF, read
// as "\n"), as the original MMLU CSVs (no header) are written. Each record carries its first line number.
std::vector<std::pair<size_t, std::vector<std::string>>> csv_records(const std::string& text, const std::string& path) {
  std::vector<std::pair<size_t, std::vector<std::string>>> records;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, any = false;
  size_t line = 1, record_line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // a line break is "\n" whichever the file used
      else field += c, line += c == '\n';
    } else if (c == '"') {
      quoted = any = true;
    } else if (c == ',') {
      fields.push_back(field), field.clear(), any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) fields.push_back(field), records.emplace_back(record_line, fields);
      fields.clear(), field.clear(), any = false, record_line = ++line;
    } else {
      field += c, any = true;
    }
  }
  if (quoted) throw_bad_input(path + ":" + std::to_string(record_line) + ": a quoted field is not closed");
  if (any || !field.empty()) fields.push_back(field), records.emplace_back(record_line, fields);
  return records;
}

// The original distribution: a folder mmlu_test/ of <subject>_test.csv, read in name order.
Task load_mmlu_csv(const std::string& folder, int64_t limit) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::string name = entry.path().filename().string();
    if (name.size() > 9 && name.compare(name.size() - 9, 9, "_test.csv") == 0) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw_bad_input(folder + ": holds no <subject>_test.csv files");
  Task task{"mmlu", {}, "", true, {}};
  std::string all_text;
  for (const std::string& name : files) {
    std::string path = folder + "/" + name, text = read_text_file(path);
    all_text += name + '\0' + text;
    std::string subject = name.substr(0, name.size() - 9);
    const auto records = csv_records(text, path);
    // A subject without questions would score nothing and still count in the groups' sizes.
    if (records.empty()) throw_bad_input(path + ": holds no items");
    for (const auto& [line, fields] : records) {
      if (limit > 0 && int64_t(task.items.size()) >= limit) break;
      std::string where = path + ":" + std::to_string(line);
      if (fields.size() != 6) throw_bad_input(where + ": has " + std::to_string(fields.size()) + " fields, expected question,A,B,C,D,answer");
      const std::string& answer = fields[5];
      if (answer.size() != 1 || answer[0] < 'A' || answer[0] > 'D') throw_bad_input(where + ": answer \"" + answer + "\" is not A, B, C or D");
      TaskItem item = mmlu_item(subject, fields[0], {fields[1], fields[2], fields[3], fields[4]}, answer[0] - 'A', where);
      check_item(item, where);
      task.items.push_back(std::move(item));
    }
  }
  task.content_hash = sha256_hex(all_text);
  return task;
}

Task load_mmlu(const std::string& dir, int64_t limit) {
  std::string path = find_file("mmlu", dir, {"mmlu_test.jsonl", "mmlu_test"});
  Task task = fs::is_directory(path) ? load_mmlu_csv(path, limit)
                                     : read_jsonl("mmlu", path, limit, [](const Json& line, const std::string& where) {
                                         return mmlu_item(require_string(line, "subject", where), require_string(line, "question", where),
                                                          string_list(line, "choices", where), int_label(line, "answer", where), where);
                                       });
  task.reports_acc_norm = false;
  task.subject_groups = mmlu_groups();
  return task;
}

// hellaswag/utils.py process_docs: query = preprocess(activity_label + ": " + ctx_a + " " +
// ctx_b.capitalize()), choices = preprocess(ending) each, gold = int(label).
Task load_hellaswag(const std::string& dir, int64_t limit) {
  return read_jsonl("hellaswag", find_file("hellaswag", dir, {"hellaswag_validation.jsonl", "hellaswag_val.jsonl"}), limit,
                    [](const Json& line, const std::string& where) {
                      std::string context = require_string(line, "ctx_a", where) + " " + python_capitalize(require_string(line, "ctx_b", where));
                      TaskItem item{hellaswag_preprocess(require_string(line, "activity_label", where) + ": " + context), {},
                                    int_label(line, "label", where), "", ""};
                      for (const std::string& ending : string_list(line, "endings", where)) item.choices.push_back(hellaswag_preprocess(ending));
                      return item;
                    });
}

}  // namespace

std::string hellaswag_preprocess(const std::string& text) {
  std::string stripped = python_strip(text), titled;
  for (size_t i = 0; i < stripped.size(); ++i) {
    if (stripped.compare(i, 8, " [title]") == 0) titled += ". ", i += 7;
    else titled += stripped[i];
  }
  // re.sub("\\[.*?\\]", "", text): '.' does not match a newline, so a bracket closed only after
  // one stays.
  std::string unbracketed;
  for (size_t i = 0; i < titled.size(); ++i) {
    size_t close = titled[i] == '[' ? titled.find_first_of("]\n", i + 1) : std::string::npos;
    if (close != std::string::npos && titled[close] == ']') i = close;
    else unbracketed += titled[i];
  }
  std::string out;
  for (size_t i = 0; i < unbracketed.size(); ++i) {
    out += unbracketed[i];
    if (unbracketed[i] == ' ' && i + 1 < unbracketed.size() && unbracketed[i + 1] == ' ') ++i;
  }
  return out;
}

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> names = {"arc_challenge", "boolq", "piqa", "rte", "openbookqa", "winogrande", "mmlu", "hellaswag", "arc_easy"};
  return names;
}

Task load_builtin_task(const std::string& name, const std::string& dir, int64_t limit) {
  if (name == "arc_challenge" || name == "arc_easy") return load_arc(name, dir, limit);
  if (name == "boolq") return load_boolq(dir, limit);
  if (name == "piqa") return load_piqa(dir, limit);
  if (name == "rte") return load_rte(dir, limit);
  if (name == "openbookqa") return load_openbookqa(dir, limit);
  if (name == "winogrande") return load_winogrande(dir, limit);
  if (name == "mmlu") return load_mmlu(dir, limit);
  if (name == "hellaswag") return load_hellaswag(dir, limit);
  throw_bad_input("unknown built-in task \"" + name + "\"");
}

Task load_jsonl_task(const std::string& path, int64_t limit) {
  return read_jsonl(path, path, limit, [](const Json& line, const std::string& where) {
    TaskItem item{require_string(line, "context", where), string_list(line, "choices", where),
                  choice_index(require_int(line, "gold", where), "gold", where), "", ""};
    return item;
  });
}

}  // namespace cdmoe::eval
