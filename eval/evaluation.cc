#include "eval/evaluation.h"

#include <cctype>

#include "core/error.h"
#include "eval/device_memory.h"
#include "eval/metrics.h"

namespace cdmoe::eval {

std::string task_metric_prefix(const std::string& task_name) {
  std::string base = task_name.substr(task_name.find_last_of('/') + 1);
  if (base.size() > 6 && base.compare(base.size() - 6, 6, ".jsonl") == 0) base.resize(base.size() - 6);
  std::string prefix;
  for (char c : base) prefix += std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(static_cast<unsigned char>(c))) : '_';
  if (prefix.empty() || !std::isalpha(static_cast<unsigned char>(prefix[0]))) prefix = "task_" + prefix;
  return prefix.substr(0, 40);
}

std::vector<Metric> evaluate(const model::MoeModel& model, const model::Tokenizer& tokenizer, const Plan& plan,
                             const EvaluationRequest& request) {
  plan.validate(model.shape(), "plan");
  std::vector<const MetricDefinition*> chosen;
  for (const std::string& name : request.metrics) {
    const MetricDefinition& metric = find_metric(name);
    if (!metric.applies(request)) throw_bad_input("metric \"" + name + "\" needs " + metric.needs + ", which was not given");
    chosen.push_back(&metric);
  }
  if (request.metrics.empty()) {
    for (const MetricDefinition& metric : registered_metrics()) {
      if (metric.applies(request)) chosen.push_back(&metric);
    }
  }
  std::vector<Metric> out;
  reset_device_peak(model.device());  // a CUDA peak then covers this evaluation (device_memory.h)
  for (const MetricDefinition* metric : chosen) metric->compute(MetricInputs{model, tokenizer, plan, request}, out);
  return out;
}

}  // namespace cdmoe::eval
