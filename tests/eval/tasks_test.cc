// Multiple-choice tasks: loaders on the real benchmark files, bad input by line number,
// lm-evaluation-harness scoring by hand, and continuation log-likelihoods against the
// independent PyTorch reference (tests/fixtures/model/make_golden.py).
#include "eval/tasks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

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
  EXPECT_THROW(load_task("lambada", kBenchmarks, 0), Error) << "not a built-in task, not a file";
}

// acc and acc_norm disagree on purpose; item 4 is right by code points (é is one), wrong by bytes.
TEST(Tasks, ScoringAsTheHarnessDoes) {
  Task task;
  task.name = "crafted";
  auto item = [](std::string context, std::vector<std::string> choices, int gold) {
    TaskItem i;
    i.context = std::move(context), i.choices = std::move(choices), i.gold = gold;
    return i;
  };
  task.items = {item("q1", {"a", "bbbb"}, 1), item("q2", {"xx", "yy"}, 0), item("q3", {"ccc", "d"}, 0), item("q4", {"\xc3\xa9", "ee"}, 1)};
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

// One context with every token of the vocabulary as a one-token continuation, mixed with the
// golden requests (each twice, order shuffled): the shared row must give each request its own
// value: the golden ones, probabilities summing to 1, exactly one greedy token.
TEST(Loglikelihood, SharedInputsGiveEachRequestItsOwnScore) {
  std::string dir = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_gqa";
  auto model = model::MoeModel::load(dir, testing::test_device());
  Json golden = read_json_file(dir + "/loglikelihood.json");
  std::vector<ContinuationRequest> requests;
  std::vector<double> expected;
  for (int copy = 0; copy < 2; ++copy) {
    for (const Json& r : golden) {
      requests.push_back({r["context"].get<std::vector<int64_t>>(), r["continuation"].get<std::vector<int64_t>>()});
      expected.push_back(r["loglikelihood"].get<double>());
    }
  }
  std::vector<int64_t> context = golden[0]["context"].get<std::vector<int64_t>>();
  ASSERT_EQ(golden[0]["continuation"].size(), 1u);
  size_t first_of_vocabulary = requests.size();
  for (int64_t token = 0; token < model->shape().vocab_size; ++token) requests.push_back({context, {token}});
  std::mt19937 rng(7);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<ContinuationRequest> shuffled;
  for (size_t i : order) shuffled.push_back(requests[i]);
  int64_t reported = 0;
  auto scores = continuation_loglikelihoods(*model, Plan(), shuffled, 4, [&](int64_t done) { reported = done; });
  EXPECT_EQ(reported, int64_t(requests.size()));
  double probability_sum = 0;
  int greedy = 0;
  for (size_t s = 0; s < order.size(); ++s) {
    size_t i = order[s];
    if (i < first_of_vocabulary) {
      EXPECT_NEAR(scores[s].loglikelihood, expected[i], 1e-4) << "request " << i;
    } else {
      probability_sum += std::exp(scores[s].loglikelihood);
      greedy += scores[s].greedy;
      if (requests[i].continuation == golden[0]["continuation"].get<std::vector<int64_t>>()) {
        EXPECT_NEAR(scores[s].loglikelihood, expected[0], 1e-4);
      }
    }
  }
  EXPECT_NEAR(probability_sum, 1.0, 1e-4);
  EXPECT_EQ(greedy, 1);
}

// Continuations of several tokens packed after one context: every prefix of each golden
// continuation is a request of that context, and each step of the chain rule a request whose
// context is the golden context + the prefix (all packed into rows of shared prefixes): the
// chain rule holds between them, and the full continuations still match the reference.
TEST(Loglikelihood, PackedContinuationsFollowTheChainRule) {
  std::string dir = std::string(CDMOE_TEST_FIXTURES) + "/model/deepseek_gqa";
  auto model = model::MoeModel::load(dir, testing::test_device());
  Json golden = read_json_file(dir + "/loglikelihood.json");
  std::vector<ContinuationRequest> requests;
  struct Step { size_t prefix, longer, alone; };
  std::vector<Step> steps;
  std::vector<std::pair<size_t, double>> full;
  for (const Json& g : golden) {
    auto context = g["context"].get<std::vector<int64_t>>();
    auto continuation = g["continuation"].get<std::vector<int64_t>>();
    size_t previous = SIZE_MAX;
    for (size_t i = 1; i <= continuation.size(); ++i) {
      requests.push_back({context, std::vector<int64_t>(continuation.begin(), continuation.begin() + long(i))});
      size_t current = requests.size() - 1;
      if (previous != SIZE_MAX) {
        std::vector<int64_t> longer_context = context;
        longer_context.insert(longer_context.end(), continuation.begin(), continuation.begin() + long(i) - 1);
        requests.push_back({longer_context, {continuation[i - 1]}});
        steps.push_back({previous, current, requests.size() - 1});
      }
      previous = current;
    }
    full.emplace_back(previous, g["loglikelihood"].get<double>());
  }
  ASSERT_GE(steps.size(), 5u);
  for (int64_t batch : {1, 3, 16}) {
    auto scores = continuation_loglikelihoods(*model, Plan(), requests, batch);
    for (auto [r, expected] : full) EXPECT_NEAR(scores[r].loglikelihood, expected, 1e-4) << "request " << r;
    for (const Step& s : steps) {
      EXPECT_NEAR(scores[s.longer].loglikelihood - scores[s.prefix].loglikelihood, scores[s.alone].loglikelihood, 1e-4)
          << "request " << s.longer << " batch " << batch;
    }
  }
}

}  // namespace
}  // namespace cdmoe::eval
