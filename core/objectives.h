// The one table of search/evaluation divergences: their names on the command line and in task
// parameters ("js-hidden"), the metric names they are recorded under ("js_hidden_layer",
// "js_logits_model_f25") and the unit of those metrics. Every other place (search/, eval/,
// worker/, apps/) asks this table, so a metric name always comes with the same unit.
#pragma once

#include <string>
#include <vector>

namespace cdmoe {

enum class DivergenceKind { kJsHidden, kJsLogits, kKl, kMse, kCosine };

struct DivergenceInfo {
  DivergenceKind kind;
  const char* name;         // as given to --objective / --divergence: "js-logits"
  const char* metric_stem;  // metric-name prefix: "js_logits"
  const char* unit;         // unit of its metrics: "nats" for the information divergences
  bool vocabulary;          // compares next-token distributions (final norm + LM head)
};

const std::vector<DivergenceInfo>& divergences();
// The entry named `name`; bad input ("WHERE: objective \"x\" is not one of ...") otherwise.
const DivergenceInfo& find_divergence(const std::string& name, const std::string& where);
// "js-hidden, js-logits, kl, mse, cosine", for help texts and errors.
std::string divergence_names();

// How a divergence averages its per-token values: over every valid calibration token (kToken:
// long documents weigh more), or per sequence first and then over sequences (kSequence: the
// CD-MoE reference's mean of per-sample means). Named "token" / "sequence" on command lines.
enum class DivergenceMean { kToken, kSequence };
// The mean named `name`; bad input ("WHERE: \"x\" is not one of token, sequence") otherwise.
DivergenceMean divergence_mean_named(const std::string& name, const std::string& where);

// The scopes an objective compares at: the changed layer's output, or the model's output.
inline constexpr const char* kObjectiveScopes[] = {"layer", "model"};
// Bad input unless scope is one of kObjectiveScopes.
void validate_objective_scope(const std::string& scope, const std::string& where);

// The metric a divergence is recorded under: "<stem>_<scope>", plus "_f<percent>" when only a
// leading fraction (0, 1) of the calibration sequences is used.
std::string divergence_metric_name(const DivergenceInfo& divergence, const std::string& scope,
                                   double calib_fraction = 1.0);

// The metrics a speed measurement records (eval/metrics.cc's `speed`). They describe a plan's
// architecture, not its weights: a fine-tuned candidate, the same plan as its parent, shares its
// parent's instead of a second noisy figure for one shape (coordinator/coordinator.cc).
const std::vector<std::string>& speed_metric_names();

}  // namespace cdmoe
