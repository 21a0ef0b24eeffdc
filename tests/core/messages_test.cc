#include "core/messages.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/error.h"

namespace cdmoe {
namespace {

TEST(Messages, TaskRoundTrip) {
  Task task;
  task.candidate_id = 42;
  task.kind = "search";
  task.plan = Plan::parse(R"({"layers":{"3":{"op":"condense","experts":[4,1]}}})", "p");
  task.params = {{"objective", "js-logits"}, {"calib_samples", 100}};
  task.attempt = 2;
  Task back = task_from_json(Json::parse(task_to_json(task).dump()), "wire");
  EXPECT_EQ(back.candidate_id, 42);
  EXPECT_EQ(back.kind, "search");
  EXPECT_EQ(back.plan, task.plan);
  EXPECT_EQ(back.params, task.params);
  EXPECT_EQ(back.attempt, 2);
}

TEST(Messages, ResultRoundTripKeepsNonFiniteAsNaN) {
  Result result;
  result.candidate_id = 7;
  result.ok = false;
  result.error = "out of memory";
  result.metrics = {{"js_logits", 0.125, "nats"}, {"perplexity", INFINITY, ""}};
  result.finetune_steps = {{1, 2.5, 1e-4, 4096}, {2, 2.25, 1e-4, 8192}};
  result.held_out_losses = {{2, 2.75, 512, "ab12"}};
  result.artifacts = {{"trained_tensors", "r.db.artifacts/t.safetensors", "cd34", 4096}};
  result.worker_rank = 3;
  result.worker_host = "node7";
  result.elapsed_s = 1.5;
  Result back = result_from_json(Json::parse(result_to_json(result).dump()), "wire");
  EXPECT_EQ(back.candidate_id, 7);
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.error, "out of memory");
  ASSERT_EQ(back.metrics.size(), 2u);
  EXPECT_EQ(back.metrics[0].name, "js_logits");
  EXPECT_DOUBLE_EQ(back.metrics[0].value, 0.125);
  EXPECT_EQ(back.metrics[0].unit, "nats");
  EXPECT_TRUE(std::isnan(back.metrics[1].value));
  ASSERT_EQ(back.finetune_steps.size(), 2u);
  EXPECT_EQ(back.finetune_steps[1].tokens, 8192);
  EXPECT_DOUBLE_EQ(back.finetune_steps[1].loss, 2.25);
  ASSERT_EQ(back.held_out_losses.size(), 1u);
  EXPECT_EQ(back.held_out_losses[0].after_steps, 2);
  EXPECT_DOUBLE_EQ(back.held_out_losses[0].loss, 2.75);
  EXPECT_EQ(back.held_out_losses[0].tokens, 512);
  EXPECT_EQ(back.held_out_losses[0].data_hash, "ab12");
  ASSERT_EQ(back.artifacts.size(), 1u);
  EXPECT_EQ(back.artifacts[0].kind, "trained_tensors");
  EXPECT_EQ(back.artifacts[0].path, "r.db.artifacts/t.safetensors");
  EXPECT_EQ(back.artifacts[0].sha256, "cd34");
  EXPECT_EQ(back.artifacts[0].bytes, 4096);
  EXPECT_EQ(back.worker_rank, 3);
  EXPECT_EQ(back.worker_host, "node7");
}

TEST(Messages, HelloRoundTripCarriesRouting) {
  Hello hello{true, "node3", "", {{1, 0, 120, 0.25}, {1, 5, 7, 0.5}, {2, -1, 64, 0.75}}, "cuda:1", "bfloat16", 4};
  Hello back = hello_from_json(Json::parse(hello_to_json(hello).dump()), "wire");
  EXPECT_TRUE(back.ok);
  EXPECT_EQ(back.host, "node3");
  EXPECT_EQ(back.device, "cuda:1");
  EXPECT_EQ(back.threads, 4);
  EXPECT_EQ(back.dtype, "bfloat16");
  EXPECT_EQ(back.rank, -1);
  ASSERT_EQ(back.routing.size(), 3u);
  EXPECT_EQ(back.routing[1].expert, 5);
  EXPECT_DOUBLE_EQ(back.routing[1].tokens, 7);
  EXPECT_EQ(back.routing[2].expert, -1);
  EXPECT_DOUBLE_EQ(back.routing[2].average_weight, 0.75);
  // An older worker's hello has no routing; a malformed row is refused, naming the field.
  EXPECT_TRUE(hello_from_json(Json{{"ok", true}, {"host", "h"}}, "wire").routing.empty());
  EXPECT_EQ(hello_from_json(Json{{"ok", true}, {"host", "h"}}, "wire").device, "");
  Hello ranked;
  ranked.rank = 2;
  EXPECT_EQ(hello_from_json(hello_to_json(ranked), "wire").rank, 2);
  try {
    hello_from_json(Json{{"ok", true}, {"routing", Json::array({Json::array({1, 2, 3})})}}, "wire");
    ADD_FAILURE() << "a row of 3 values was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'routing' row"), std::string::npos) << e.what();
  }
}

TEST(Messages, MetricNames) {
  EXPECT_TRUE(is_valid_metric_name("piqa_acc_norm"));
  EXPECT_TRUE(is_valid_metric_name("js_logits"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("Accuracy"));
  EXPECT_FALSE(is_valid_metric_name("9lives"));
  EXPECT_FALSE(is_valid_metric_name("acc\"); DROP TABLE metrics; --"));
  EXPECT_FALSE(is_valid_metric_name(std::string(65, 'a')));
  Json bad = {{"candidate_id", 1}, {"metrics", {{{"name", "Bad Name"}, {"value", 1.0}}}}};
  EXPECT_THROW(result_from_json(bad, "wire"), Error);
}

TEST(Messages, States) {
  for (auto state : {CandidateState::kWaiting, CandidateState::kRunning, CandidateState::kDone,
                     CandidateState::kFailed, CandidateState::kPreempted}) {
    EXPECT_EQ(parse_candidate_state(candidate_state_name(state), "s"), state);
  }
  EXPECT_THROW(parse_candidate_state("done", "--state"), Error);
}

}  // namespace
}  // namespace cdmoe
