// The paper's eight lm-evaluation-harness tasks (and ARC-Easy): every loader, on both the Hugging
// Face export and the original distribution form, builds exactly the (context, continuation)
// strings that tests/fixtures/benchmarks/make_fixtures.py derives from lm-eval's task
// definitions; MMLU's group aggregation against lm-eval's formulas by hand; bad input in one line.
#include <cmath>
#include <map>
#include <tuple>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "eval/benchmark_tasks.h"
#include "eval/evaluation.h"
#include "eval/loglikelihood.h"
#include "eval/python_text.h"
#include "eval/tasks.h"
#include "eval/text_data.h"
#include "model/tokenizer.h"
#include "tests/test_device.h"
#include "tests/test_util.h"

namespace cdmoe::eval {
namespace {

const std::string kFixtures = std::string(CDMOE_TEST_FIXTURES) + "/benchmarks";

void expect_requests(const Task& task, const Json& expected, const std::string& form) {
  ASSERT_EQ(task.items.size(), expected.size()) << task.name << " " << form;
  for (size_t i = 0; i < task.items.size(); ++i) {
    const TaskItem& item = task.items[i];
    auto requests = item_requests(item);
    const Json& want = expected[i]["requests"];
    ASSERT_EQ(requests.size(), want.size()) << task.name << " " << form << " item " << i;
    for (size_t c = 0; c < requests.size(); ++c) {
      EXPECT_EQ(requests[c].first, want[c][0].get<std::string>()) << task.name << " " << form << " item " << i << " choice " << c;
      EXPECT_EQ(requests[c].second, want[c][1].get<std::string>()) << task.name << " " << form << " item " << i << " choice " << c;
    }
    EXPECT_EQ(item.gold, expected[i]["gold"].get<int>()) << task.name << " " << form << " item " << i;
    EXPECT_EQ(item.subject, expected[i]["subject"].get<std::string>()) << task.name << " " << form << " item " << i;
  }
}

TEST(BenchmarkTasks, BuildTheHarnessRequestsFromHuggingFaceExports) {
  Json expected = read_json_file(kFixtures + "/expected.json");
  for (const std::string& name : builtin_task_names()) {
    Task task = load_task(name, kFixtures + "/hf", 0);
    EXPECT_EQ(task.name, name);
    expect_requests(task, expected[name], "hf");
  }
}

TEST(BenchmarkTasks, BuildTheSameRequestsFromTheOriginalDistributions) {
  Json expected = read_json_file(kFixtures + "/expected.json");
  for (const char* name : {"arc_challenge", "boolq", "piqa", "rte", "openbookqa", "winogrande", "hellaswag"}) {
    expect_requests(load_task(name, kFixtures + "/original", 0), expected[name], "original");
  }
  expect_requests(load_task("mmlu", kFixtures + "/original", 0), expected["mmlu_original_order"], "original");
  EXPECT_NE(load_task("mmlu", kFixtures + "/original", 0).content_hash, load_task("mmlu", kFixtures + "/hf", 0).content_hash);
  EXPECT_EQ(load_task("mmlu", kFixtures + "/original", 2).items.size(), 2u);
}

TEST(BenchmarkTasks, ReportTheMetricsTheHarnessReports) {
  for (const std::string& name : builtin_task_names()) {
    bool norm = name == "arc_challenge" || name == "arc_easy" || name == "piqa" || name == "openbookqa" || name == "hellaswag";
    EXPECT_EQ(load_task(name, kFixtures + "/hf", 0).reports_acc_norm, norm) << name;
  }
  Task mmlu = load_task("mmlu", kFixtures + "/hf", 0);
  EXPECT_EQ(mmlu.subject_groups.size(), 57u);
  EXPECT_EQ(mmlu.subject_groups.at("high_school_us_history"), "humanities");
  EXPECT_EQ(mmlu.subject_groups.at("human_sexuality"), "social_sciences");
}

TEST(BenchmarkTasks, PythonStringMethodsAsTheTemplatesUseThem) {
  EXPECT_EQ(python_strip(" \t\x1f a b \n\r"), "a b");
  EXPECT_EQ(python_capitalize("tHEN plant It"), "Then plant it");
  EXPECT_EQ(python_capitalize(""), "");
  EXPECT_EQ(hellaswag_preprocess("A [title] B"), "A. B");
  EXPECT_EQ(hellaswag_preprocess("x   y"), "x  y") << "one non-overlapping pass, as str.replace";
  EXPECT_EQ(hellaswag_preprocess("a [b\n] c [d] e"), "a [b\n] c e");
}

// lm-eval's group aggregation: subjects -> groups -> mmlu, each a size-weighted mean with
// pooled_sample_stderr, computed here by hand from the outcomes.
TEST(BenchmarkTasks, MmluAggregatesSubjectsIntoGroupsBySize) {
  Task mmlu = load_task("mmlu", kFixtures + "/hf", 0);
  // Six items: abstract_algebra (stem), high_school_us_history (humanities), anatomy (stem),
  // high_school_biology (stem), professional_accounting (other), astronomy (stem). Right: items
  // 0, 2, 4.
  std::vector<std::vector<double>> ll;
  std::vector<int> right = {1, 0, 1, 0, 1, 0};
  for (size_t i = 0; i < mmlu.items.size(); ++i) {
    std::vector<double> item(4, -5.0);
    item[size_t(right[i] ? mmlu.items[i].gold : (mmlu.items[i].gold + 1) % 4)] = -1.0;
    ll.push_back(item);
  }
  TaskScores s = score_task(mmlu, ll);
  EXPECT_EQ(s.subjects.size(), 6u);
  EXPECT_DOUBLE_EQ(s.subjects.at("anatomy").acc, 1.0);
  EXPECT_DOUBLE_EQ(s.subjects.at("high_school_biology").acc, 0.0);
  ASSERT_EQ(s.groups.size(), 3u);
  EXPECT_DOUBLE_EQ(s.groups.at("stem").acc, 2.0 / 4.0);
  EXPECT_EQ(s.groups.at("stem").items, 4);
  EXPECT_DOUBLE_EQ(s.groups.at("humanities").acc, 0.0);
  EXPECT_DOUBLE_EQ(s.acc, 3.0 / 6.0) << "weighted by size: the mean over all items";
  // One-item subjects have stderr 0 and contribute (n-1)=0: pooled over 4 stem subjects of
  // size 1 has no degrees of freedom.
  EXPECT_DOUBLE_EQ(s.groups.at("stem").acc_stderr, 0.0);
  // pooled_sample_stderr by hand: sizes 4 and 6, stderrs 0.2 and 0.1.
  double pooled = pooled_stderr({{0.5, 0.2, 4}, {0.5, 0.1, 6}});
  EXPECT_DOUBLE_EQ(pooled, std::sqrt((3 * 0.04 * 4 + 5 * 0.01 * 6) / (10.0 - 2) / 10.0));
}

// lm-eval (v0.4.4 and later) aggregates mmlu, a group of groups, over its leaf subjects: its
// standard error pools the subjects' standard errors, not the groups' pooled ones.
TEST(BenchmarkTasks, MmluStandardErrorPoolsTheSubjectsAsLmEvalDoes) {
  Task task{"mmlu", {}, "", false, {{"anatomy", "stem"}, {"astronomy", "stem"}, {"virology", "other"}}};
  // Outcomes per subject (1 right, 0 wrong): sizes 4, 2 and 3.
  const std::vector<std::pair<std::string, std::vector<int>>> outcomes = {
      {"anatomy", {1, 1, 0, 1}}, {"astronomy", {0, 1}}, {"virology", {1, 0, 0}}};
  std::vector<std::vector<double>> ll;
  std::map<std::string, std::vector<double>> by_subject;
  for (const auto& [subject, right] : outcomes) {
    for (int r : right) {
      task.items.push_back(TaskItem{"Q", {"A", "B"}, 0, "", subject});
      ll.push_back(r ? std::vector<double>{-1.0, -2.0} : std::vector<double>{-2.0, -1.0});
      by_subject[subject].push_back(r);
    }
  }
  TaskScores s = score_task(task, ll);
  std::vector<Accuracy> leaves, stem;
  for (const auto& [subject, x] : by_subject) {
    leaves.push_back(mean_stderr(x));
    if (subject != "virology") stem.push_back(leaves.back());
  }
  // By hand: sample variances 0.25 (anatomy), 0.5 (astronomy), 1/3 (virology).
  const double by_hand = std::sqrt((3 * 0.25 / 4 * 4 + 1 * 0.5 / 2 * 2 + 2 * (1.0 / 3) / 3 * 3) / (9.0 - 3) / 9.0);
  EXPECT_NEAR(pooled_stderr(leaves), by_hand, 1e-15);
  EXPECT_NEAR(s.acc_stderr, by_hand, 1e-15);
  EXPECT_DOUBLE_EQ(s.acc, 5.0 / 9.0);
  // The older, group-then-task pooling gives another figure: the test tells them apart.
  const double over_groups = pooled_stderr({s.groups.at("stem"), s.groups.at("other")});
  EXPECT_GT(std::abs(over_groups - by_hand), 1e-4);
}

TEST(BenchmarkTasks, TaskAverageNamesTheMetricOfEachTask) {
  EXPECT_EQ(TaskAverage("acc").metric_for("hellaswag", true), "acc");
  EXPECT_EQ(TaskAverage("acc_norm").metric_for("hellaswag", true), "acc_norm");
  EXPECT_EQ(TaskAverage("acc_norm").metric_for("boolq", false), "acc");
  TaskAverage mixed("hellaswag=acc_norm,arc_challenge=acc_norm");
  EXPECT_EQ(mixed.metric_for("hellaswag", true), "acc_norm");
  EXPECT_EQ(mixed.metric_for("piqa", true), "acc");
  EXPECT_THROW(mixed.metric_for("hellaswag", false), Error);
  EXPECT_THROW(TaskAverage("hellaswag=f1"), Error);
  EXPECT_THROW(TaskAverage("acc,"), Error);
  std::vector<Task> tasks = {load_task("boolq", kFixtures + "/hf", 0), load_task("hellaswag", kFixtures + "/hf", 0)};
  EXPECT_NO_THROW(check_task_average("hellaswag=acc_norm", tasks));
  EXPECT_THROW(check_task_average("boolq=acc_norm", tasks), Error);
  EXPECT_THROW(check_task_average("piqa=acc", tasks), Error);
}

// Every task end to end on a tiny model with a byte tokenizer: each request's log-likelihood and
// every reported metric against tests/fixtures/benchmarks/make_scores.py's PyTorch computation.
TEST(BenchmarkTasks, ScoresMatchAnIndependentPyTorchComputation) {
  auto model = model::MoeModel::load(kFixtures + "/byte_model", testing::test_device());
  auto tokenizer = model::Tokenizer::load(kFixtures + "/byte_model");
  Json golden = read_json_file(kFixtures + "/scores.json");
  EvaluationRequest request;
  request.metrics = {"tasks"};
  request.task_average = "acc_norm";
  double expected_mean = 0;
  for (const std::string& name : builtin_task_names()) {
    Task task = load_task(name, kFixtures + "/hf", 0);
    const Json& want = golden[name];
    std::vector<ContinuationRequest> requests;
    for (const TaskItem& item : task.items) {
      for (const auto& [context, continuation] : item_requests(item)) {
        auto [c, k] = encode_pair(*tokenizer, context, continuation);
        requests.push_back({c, k});
      }
    }
    std::vector<ContinuationScore> scores = continuation_loglikelihoods(*model, Plan(), requests, 4);
    size_t next = 0;
    for (size_t i = 0; i < task.items.size(); ++i) {
      for (size_t c = 0; c < task.items[i].choices.size(); ++c) {
        EXPECT_NEAR(scores[next++].loglikelihood, want["loglikelihoods"][i][c].get<double>(), 2e-4) << name << " item " << i << " choice " << c;
      }
    }
    expected_mean += want.contains("acc_norm") ? want["acc_norm"].get<double>() : want["acc"].get<double>();
    request.tasks.push_back(std::move(task));
  }
  std::map<std::string, double> metrics;
  for (const Metric& m : evaluate(*model, *tokenizer, Plan(), request)) metrics[m.name] = m.value;
  for (const std::string& name : builtin_task_names()) {
    for (const auto& [key, value] : golden[name].items()) {
      if (key == "loglikelihoods") continue;
      ASSERT_TRUE(metrics.count(name + "_" + key)) << name + "_" + key;
      EXPECT_NEAR(metrics[name + "_" + key], value.get<double>(), 1e-12) << name + "_" + key;
    }
  }
  EXPECT_FALSE(metrics.count("boolq_acc_norm")) << "lm-eval reports acc only for boolq";
  EXPECT_FALSE(metrics.count("winogrande_acc_norm"));
  EXPECT_NEAR(metrics["task_acc_mean"], expected_mean / double(builtin_task_names().size()), 1e-12);
}

std::string load_error(const std::string& name, const std::string& dir) {
  try {
    load_task(name, dir, 0);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message.substr(message.find(dir) == std::string::npos ? 0 : message.find(dir) + dir.size());
  }
  ADD_FAILURE() << "accepted " << name;
  return "";
}

// A request longer than the model's context is scored as lm-evaluation-harness scores it: the
// context loses its first tokens until context + continuation is max_position_embeddings + 1
// tokens (the byte model's tokens are the text's bytes, so the cut is exact in the text). A
// choice longer than the context itself is refused naming the task and item.
TEST(BenchmarkTasks, RequestsLongerThanTheContextAreCutFromTheLeftAsLmEvalDoes) {
  auto model = model::MoeModel::load(kFixtures + "/byte_model", testing::test_device());
  auto tokenizer = model::Tokenizer::load(kFixtures + "/byte_model");
  const int64_t max_length = model->shape().max_position_embeddings;
  std::string long_context;
  for (int i = 0; long_context.size() < size_t(max_length + 200); ++i) long_context += "word" + std::to_string(i) + " ";
  long_context += "answer:";
  const std::vector<std::string> choices = {"yes", "no way"};
  auto task_of = [&](const std::string& context) {
    Task task;
    task.name = "long";
    task.items.push_back(TaskItem{context, choices, 0, "", ""});
    return task;
  };
  EvaluationRequest whole, cut;
  std::vector<TaskSamples> whole_samples, cut_samples;
  whole.metrics = cut.metrics = {"tasks"};
  whole.samples = &whole_samples, cut.samples = &cut_samples;
  whole.tasks = {task_of(long_context)};
  // Each choice's own cut: " yes" and " no way" are 4 and 7 bytes, so different lengths of context.
  evaluate(*model, *tokenizer, Plan(), whole);
  ASSERT_EQ(whole_samples.size(), 1u);
  for (size_t c = 0; c < choices.size(); ++c) {
    const size_t keep = size_t(max_length + 1) - (choices[c].size() + 1);
    cut.tasks = {task_of(long_context.substr(long_context.size() - keep))};
    cut_samples.clear();
    evaluate(*model, *tokenizer, Plan(), cut);
    // The same tokens in other batches (the whole request scores both choices together): equal to
    // float32 precision, not bitwise (GEMM blocking follows the batch's shape and the CPU). A cut
    // one token off changes the context and these sums by far more than 1e-5 relative.
    const double expected = whole_samples[0].loglikelihoods[0][c];
    EXPECT_NEAR(cut_samples[0].loglikelihoods[0][c], expected, 1e-5 * std::abs(expected)) << "choice " << c;
  }
  Task too_long = task_of("Q:");
  too_long.items[0].choices = {std::string(size_t(max_length + 1), 'x'), "y"};  // " " + 513 bytes: 514 tokens
  EvaluationRequest refused;
  refused.metrics = {"tasks"};
  refused.tasks = {too_long};
  try {
    evaluate(*model, *tokenizer, Plan(), refused);
    FAIL() << "scored a choice longer than the model's context";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("task long item 1: a choice of " + std::to_string(max_length + 2) + " tokens is longer"),
              std::string::npos)
        << e.what();
  }
}

TEST(BenchmarkTasks, MissingAndBadFilesAreOneLineNamingTaskAndFile) {
  testing::TempDir dir;
  EXPECT_EQ(load_error("winogrande", dir.path()), "/winogrande_validation.jsonl (README.md, \"The paper's eight tasks\", has the export command)");
  EXPECT_EQ(load_error("mmlu", dir.path()), "/mmlu_test.jsonl or mmlu_test (README.md, \"The paper's eight tasks\", has the export command)");
  EXPECT_NE(load_error("hellaswag", "").find("task hellaswag needs --benchmarks DIR"), std::string::npos);
  testing::write_file(dir.file("winogrande_validation.jsonl"), R"({"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "1"})" "\n");
  EXPECT_EQ(load_error("winogrande", dir.path()), "/winogrande_validation.jsonl:1: sentence has no blank '_'");
  testing::write_file(dir.file("mmlu_test.jsonl"), R"({"question": "q", "subject": "astrology", "choices": ["a","b","c","d"], "answer": 0})" "\n");
  EXPECT_EQ(load_error("mmlu", dir.path()), "/mmlu_test.jsonl:1: \"astrology\" is not one of MMLU's 57 subjects");
  testing::write_file(dir.file("arc_challenge_test.jsonl"),
                      R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"})" "\n");
  EXPECT_EQ(load_error("arc_challenge", dir.path()), "/arc_challenge_test.jsonl:1: answer \"C\" is not one of the choices' labels");
  testing::write_file(dir.file("hellaswag_validation.jsonl"),
                      R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": "two"})" "\n");
  EXPECT_EQ(load_error("hellaswag", dir.path()), "/hellaswag_validation.jsonl:1: field 'label' must be an integer label, got \"two\"");
  testing::write_file(dir.file("rte_dev.tsv"), "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n");
  EXPECT_EQ(load_error("rte", dir.path()), "/rte_dev.tsv:2: label \"maybe\" is not entailment or not_entailment");
  std::filesystem::create_directory(dir.file("mmlu_test"));
  std::filesystem::remove(dir.file("mmlu_test.jsonl"));
  testing::write_file(dir.file("mmlu_test/anatomy_test.csv"), "q,a,b,c,d,A\n\"open,a,b,c,d,A\n");
  EXPECT_EQ(load_error("mmlu", dir.path()), "/mmlu_test/anatomy_test.csv:2: a quoted field is not closed");
  // A subject file without questions would score 0 and still count: refused.
  testing::write_file(dir.file("mmlu_test/anatomy_test.csv"), "");
  testing::write_file(dir.file("mmlu_test/virology_test.csv"), "\n");
  EXPECT_EQ(load_error("mmlu", dir.path()), "/mmlu_test/anatomy_test.csv: holds no items");
  EXPECT_NE(load_error("squad", dir.path()).find("unknown task \"squad\" (tasks: arc_challenge, boolq"), std::string::npos);
}

// A file saved with Windows line ends (CRLF) reads as the same items as with LF, in every form:
// the original distributions (RTE's TSV, PIQA's labels, MMLU's CSVs) and the JSONL exports.
TEST(BenchmarkTasks, CrlfLineEndsReadAsTheSameItems) {
  testing::TempDir dir;
  const std::string original = kFixtures + "/original";
  std::filesystem::create_directory(dir.file("mmlu_test"));
  auto crlf = [](const std::string& text) {
    std::string out;
    for (char c : text) out += c == '\n' ? std::string("\r\n") : std::string(1, c);
    return out;
  };
  for (const auto& entry : std::filesystem::recursive_directory_iterator(original)) {
    if (!entry.is_regular_file()) continue;
    const std::string relative = entry.path().string().substr(original.size());
    testing::write_file(dir.path() + relative, crlf(testing::read_file(entry.path().string())));
  }
  for (const char* name : {"rte", "piqa", "mmlu", "boolq", "hellaswag", "winogrande", "openbookqa", "arc_challenge"}) {
    Task lf = load_task(name, original, 0), windows = load_task(name, dir.path(), 0);
    ASSERT_EQ(lf.items.size(), windows.items.size()) << name;
    for (size_t i = 0; i < lf.items.size(); ++i) {
      EXPECT_EQ(item_requests(lf.items[i]), item_requests(windows.items[i])) << name << " item " << i;
      EXPECT_EQ(lf.items[i].gold, windows.items[i].gold) << name << " item " << i;
    }
  }
}

// Labels are choice indices: 2^32 + 1 must not wrap into gold 1 (nor 2^64 - 1 into -1), in every
// loader that reads one.
TEST(BenchmarkTasks, LabelsBeyondAnIntAreRefusedNotWrapped) {
  testing::TempDir dir;
  const std::string piqa = R"({"goal": "g", "sol1": "a", "sol2": "b", "label": LABEL})";
  const std::string boolq = R"({"passage": "p", "question": "q", "label": LABEL})";
  const std::string rte = R"({"sentence1": "a", "sentence2": "b", "label": LABEL})";
  const std::string hellaswag = R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": LABEL})";
  const std::string mmlu = R"({"question": "q", "subject": "anatomy", "choices": ["a","b","c","d"], "answer": LABEL})";
  const std::vector<std::tuple<std::string, std::string, std::string>> loaders = {
      {"piqa", "piqa_validation.jsonl", piqa}, {"boolq", "boolq_validation.jsonl", boolq}, {"rte", "rte_validation.jsonl", rte},
      {"hellaswag", "hellaswag_validation.jsonl", hellaswag}, {"mmlu", "mmlu_test.jsonl", mmlu}};
  for (const auto& [task, file, line] : loaders) {
    for (const std::string& label : {std::string("4294967297"), std::string("18446744073709551615"), std::string("-1"),
                                     std::string("1e19")}) {
      std::string text = line;
      text.replace(text.find("LABEL"), 5, label);
      testing::write_file(dir.file(file), text + "\n");
      std::string message = load_error(task, dir.path());
      EXPECT_EQ(message.rfind("/" + file + ":1: field '", 0), 0u) << task << " " << label << ": " << message;
    }
  }
  testing::write_file(dir.file("generic.jsonl"), R"({"context": "x", "choices": ["a", "b"], "gold": 4294967297})" "\n");
  EXPECT_THROW(load_task(dir.file("generic.jsonl"), "", 0), Error);
}

}  // namespace
}  // namespace cdmoe::eval
