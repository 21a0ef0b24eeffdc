#include "eval/evaluation.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "eval/device_memory.h"
#include "eval/metrics.h"

namespace cdmoe::eval {

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
  for (const Metric& m : out) {
    const bool interval_bound = m.name == "speedup_ci_low" || m.name == "speedup_ci_high";
    if (!std::isfinite(m.value) && !interval_bound) {
      throw_runtime("metric " + m.name + " is not finite (" + std::to_string(m.value) +
                    "): the model's weights or activations under this plan are not finite");
    }
  }
  return out;
}

}  // namespace cdmoe::eval
