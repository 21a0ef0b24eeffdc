// Multiple-choice tasks: loaders on the real benchmark files, bad input by line number,
// lm-evaluation-harness scoring by hand, and continuation log-likelihoods against the
// independent PyTorch reference (tests/fixtures/model/make_golden.py).
#include "eval/tasks.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "eval/loglikelihood.h"
#include "tests/test_device.h"
#include "tests/test_util.h"

namespace cdmoe::eval {
namespace {

const std::string kBenchmarks = CDMOE_BENCHMARKS_DIR;

TEST(Tasks, LoadsTheBenchmarksTheProjectCarries) {
  Task piqa = load_task("piqa", kBenchmarks, 0);
  EXPECT_EQ(piqa.items.size(), 1838u);
  EXPECT_EQ(piqa.items[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(piqa.items[0].choices.size(), 2u);
  EXPECT_EQ(piqa.items[0].gold, 0);
  EXPECT_EQ(piqa.items[1].gold, 1);
  EXPECT_EQ(piqa.content_hash.size(), 64u);
  Task arc = load_task("arc_easy", kBenchmarks, 0);
  EXPECT_EQ(arc.items.size(), 2268u);
  EXPECT_EQ(arc.items[1].choices[1], "breathing mask");
  EXPECT_EQ(arc.items[1].gold, 1);
  EXPECT_EQ(load_task("arc_easy", kBenchmarks, 10).items.size(), 10u);
  EXPECT_EQ(load_task("arc_easy", kBenchmarks, 10).content_hash, arc.content_hash);
}

std::string task_error(const std::string& contents) {
  testing::TempDir dir;
  std::string path = dir.file("task.jsonl");
  testing::write_file(path, contents);
  try {
    load_task(path, kBenchmarks, 0);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    std::string message = e.what();
    return message.substr(message.find("task.jsonl"));
  }
  ADD_FAILURE() << "accepted " << contents;
  return "";
}

TEST(Tasks, BadGenericTasksNameTheLine) {
  std::string good = R"({"context": "2+2=", "choices": ["4", "5"], "gold": 0})" "\n";
  EXPECT_EQ(task_error(good + "[1, 2]\n"), "task.jsonl:2: expected a JSON object");
  EXPECT_EQ(task_error(good + "\n" + R"({"context": "x", "gold": 0})"), "task.jsonl:3: missing required field 'choices'");
  EXPECT_EQ(task_error(R"({"context": "x", "choices": ["a", "b"], "gold": 2})"),
            "task.jsonl:1: gold 2 is out of range for 2 choices");
  EXPECT_EQ(task_error(R"({"context": "x", "choices": ["a"], "gold": 0})"), "task.jsonl:1: needs at least 2 choices, has 1");
  // An empty continuation scores 0, more than any real one: it would always win.
  EXPECT_EQ(task_error(good + R"({"context": "x", "choices": ["a", ""], "gold": 0})"), "task.jsonl:2: choice 1 is empty");
  EXPECT_THROW(load_task("piqa", kBenchmarks, -1), Error) << "a negative item limit";
  // Non-UTF-8 text: the JSON parser itself rejects the bytes, naming the line.
  EXPECT_EQ(task_error("{\"context\": \"\xff\xfe\", \"choices\": [\"a\", \"b\"], \"gold\": 0}").rfind("task.jsonl:1: not valid JSON", 0), 0u);
  EXPECT_EQ(task_error(""), "task.jsonl: holds no items");
  EXPECT_THROW(load_task("hellaswag", kBenchmarks, 0), Error);
}

// acc and acc_norm disagree on purpose; item 4 is right by code points (é is one), wrong by bytes.
TEST(Tasks, ScoringAsTheHarnessDoes) {
  Task task{"crafted", {{"q1", {"a", "bbbb"}, 1}, {"q2", {"xx", "yy"}, 0}, {"q3", {"ccc", "d"}, 0}, {"q4", {"\xc3\xa9", "ee"}, 1}}, ""};
  TaskScores s = score_task(task, {{-2.0, -4.0}, {-1.0, -1.0}, {-3.0, -2.0}, {-1.5, -2.0}});
  EXPECT_DOUBLE_EQ(s.acc, 0.25);
  EXPECT_DOUBLE_EQ(s.acc_norm, 1.0);
  EXPECT_DOUBLE_EQ(s.acc_stderr, 0.25);  // outcomes 0,1,0,0: sqrt(0.25 / 4)
  EXPECT_DOUBLE_EQ(s.acc_norm_stderr, 0.0);
  EXPECT_EQ(s.items, 4);
  EXPECT_EQ(count_code_points("h\xc3\xa9llo \xf0\x9f\x99\x82", "t"), 7);
  EXPECT_THROW(count_code_points("\xc3", "t"), Error);
}

TEST(Loglikelihood, MatchesTheReferenceInAnyBatching) {
  std::string dir = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_gqa";
  auto model = model::MoeModel::load(dir, testing::test_device());
  Json golden = read_json_file(dir + "/loglikelihood.json");
  std::vector<ContinuationRequest> requests;
  for (const Json& r : golden) requests.push_back({r["context"].get<std::vector<int64_t>>(), r["continuation"].get<std::vector<int64_t>>()});
  for (int64_t batch : {1, 2, 8}) {
    auto scores = continuation_loglikelihoods(*model, Plan(), requests, batch);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_NEAR(scores[i].loglikelihood, golden[i]["loglikelihood"].get<double>(), 1e-4) << "request " << i << " batch " << batch;
      EXPECT_EQ(scores[i].greedy, golden[i]["greedy"].get<bool>()) << "request " << i;
    }
  }
  EXPECT_THROW(continuation_loglikelihoods(*model, Plan(), {{{}, {1}}}), Error);
}

}  // namespace
}  // namespace cdmoe::eval
