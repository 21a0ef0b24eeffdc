// Drives a strategy against a synthetic objective, as the coordinator would with workers.
#pragma once

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_shape.h"
#include "model/family.h"
#include "search/strategy.h"

namespace cdmoe::search::testing {

using Objective_fn = std::function<double(const Candidate&)>;

struct Recorded {
  std::string stage;
  Plan plan;
  double value;
};

struct RunLog {
  std::vector<Candidate> handed;   // every candidate next() returned, in order
  std::vector<Recorded> recorded;  // every result fed back, in order
};

// Hands results back `in_flight` at a time in an order drawn from `order_seed` (0: FIFO).
// Stops after `stop_after` results (-1: run to the end). Fails the test when the strategy
// stalls (nothing to run, nothing in flight, not finished).
inline RunLog drive(Strategy& strategy, const Objective_fn& objective, unsigned order_seed = 0,
                    long stop_after = -1, size_t in_flight = 1u << 30) {
  RunLog log;
  std::vector<Candidate> pending;
  std::mt19937 rng(order_seed);
  for (;;) {
    for (Candidate& c : strategy.next()) {
      log.handed.push_back(c);
      pending.push_back(std::move(c));
    }
    if (pending.empty()) {
      EXPECT_TRUE(strategy.finished()) << "strategy stalled";
      return log;
    }
    if (order_seed != 0) std::shuffle(pending.begin(), pending.end(), rng);
    size_t take = std::min(pending.size(), in_flight);
    for (size_t i = 0; i < take; ++i) {
      if (stop_after >= 0 && long(log.recorded.size()) >= stop_after) return log;
      const Candidate& c = pending[i];
      double value = objective(c);
      strategy.record(c.stage, c.plan, {{c.objective.metric_name(), value, "nats"}});
      log.recorded.push_back({c.stage, c.plan, value});
    }
    pending.erase(pending.begin(), pending.begin() + long(take));
  }
}

// A deepseek-family shape: `layers` decoder layers, all MoE but `dense_first` first ones.
inline ModelShape synthetic_shape(int layers, int experts, int dense_first = 0, int top_k = 2) {
  nlohmann::json config = {{"model_type", "deepseek"},   {"num_hidden_layers", layers},
                           {"hidden_size", 64},          {"vocab_size", 1000},
                           {"num_attention_heads", 4},   {"intermediate_size", 256},
                           {"moe_intermediate_size", 32}, {"n_routed_experts", experts},
                           {"n_shared_experts", 1},      {"num_experts_per_tok", top_k},
                           {"first_k_dense_replace", dense_first}};
  return model::model_shape_from_config(config, "synthetic config");
}

inline std::string plan_text(const Plan& plan) { return plan.canonical(); }

inline std::vector<std::string> budget_texts(const std::vector<BudgetPoint>& points) {
  std::vector<std::string> texts;
  for (const BudgetPoint& p : points) texts.push_back(p.method + " " + p.budget + " " + p.plan.canonical());
  return texts;
}

// The message of the bad-input error (exit code 2) that `f` throws; a test failure if it accepts.
inline std::string bad_input_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

}  // namespace cdmoe::search::testing
