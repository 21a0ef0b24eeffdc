// The metrics a full evaluation computes, registered by name (ARCHITECTURE.md §4). A metric is one
// function from (model, plan, the request's data) to named values with units; adding one is
// one function and one row in metrics.cc. Its values are stored as `metrics` rows and appear as
// columns of the `results` view with no schema change. evaluate() runs them in registry order.
#pragma once

#include <string>
#include <vector>

#include "eval/evaluation.h"

namespace cdmoe::eval {

struct MetricInputs {
  const model::MoeModel& model;
  const model::Tokenizer& tokenizer;
  const Plan& plan;
  const EvaluationRequest& request;
};

struct MetricDefinition {
  std::string name;      // "tasks", "perplexity", "divergence", "speed", "memory"
  std::string produces;  // the metric names it writes, for help texts
  std::string needs;     // the inputs it needs, for the error when they are missing
  bool (*applies)(const EvaluationRequest&);                    // the request has those inputs
  void (*compute)(const MetricInputs&, std::vector<Metric>&);  // appends its values
};

const std::vector<MetricDefinition>& registered_metrics();
// Bad input naming the registered metrics when `name` is not one of them.
const MetricDefinition& find_metric(const std::string& name);

}  // namespace cdmoe::eval
