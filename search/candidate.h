// What a search strategy hands the coordinator: a candidate is a plan plus the objective a
// worker must measure on it; a budget point is a plan chosen for full evaluation.
// Torch-free value types (ARCHITECTURE.md §3: search/ never sees a tensor).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/json_fields.h"
#include "core/plan.h"

namespace cdmoe::search {

// A divergence of a candidate from the original model on calibration data (ARCHITECTURE.md §2).
struct Objective {
  std::string divergence = "js-hidden";  // js-hidden | js-logits | kl | mse | cosine
  std::string scope = "layer";           // layer: the changed layer's own output; model: the final output
  double calib_fraction = 1.0;           // < 1: measured on that leading fraction of the calibration tokens

  // The metric the worker reports, e.g. "js_hidden_layer", "js_logits_model", "js_hidden_layer_f25".
  std::string metric_name() const;
  Json to_json() const;
  bool operator==(const Objective& other) const;
};

// Checks divergence and scope names (core/objectives.h); bad input naming `where` otherwise.
void validate_objective(const Objective& objective, const std::string& where);

// A candidate named by stage and plan: unique within a sweep (the database's key).
struct CandidateRef {
  std::string stage;
  Plan plan;
};

struct Candidate {
  std::string stage;   // expert_select, layer_select_k6, drop_select, prune_select, ... (+ "_screen")
  std::string method;  // cdmoe_s, cdmoe_sr_k6, drop, prune
  Plan plan;
  Objective objective;
  std::optional<CandidateRef> parent;  // the candidate this one extends, if any
  std::string budget;                  // layer selection step t: "layers:t"; empty otherwise
};

// A plan to evaluate in full (tasks, perplexity, memory, speed) after the search.
struct BudgetPoint {
  std::string method;  // cdmoe_s, cdmoe_sr_k6, drop, prune, random_sr_k6, plans, ...
  std::string budget;  // the budget as the user wrote it, e.g. "layers:9", "memory:0.7"
  Plan plan;
  double search_value = 0;  // the objective's value when the search chose it (NaN when unsearched)
};

}  // namespace cdmoe::search
