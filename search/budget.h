// Condensation budgets and how they map onto a search's budget curve.
//   layers:N[,M...] or layers:A-B   condense (drop) exactly that many MoE layers
//   memory:F  (0 < F <= 1)          parameters at most F of the original's
//   memory:B  (bytes; KB/MB/GB/KiB/MiB/GiB suffixes) parameters at the checkpoint's dtype
//   speed:S                         estimated speed-up at least S (cost model below)
// Groups are separated by ';' or '|': "layers:1-4;memory:0.7,0.8;speed:1.2".
// A memory or speed budget maps to the least-compressed point of the curve that meets it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cdmoe {
struct ModelShape;
class Plan;
}  // namespace cdmoe

namespace cdmoe::search {

struct Budget {
  enum class Kind { kLayers, kMemory, kSpeed };
  Kind kind = Kind::kLayers;
  double value = 0;  // layer count, memory fraction (<= 1) or bytes (> 1), or minimum speed-up
  std::string text;  // one budget in canonical form, e.g. "layers:9", "memory:0.7", "speed:1.2"
};

std::vector<Budget> parse_budgets(const std::string& spec, const std::string& where);

// Estimated prefill cost per token: FLOPs, with routed-expert FLOPs divided by their relative
// efficiency (small per-expert GEMMs after token dispatch run slower than one dense GEMM of
// the same FLOPs; that gap is where condensation's speed-up at equal FLOPs comes from). The
// measured speed-up is what a sweep records; this only maps speed budgets to plans.
struct CostModel {
  int64_t sequence_length = 2048;         // attention cost is that of a causal prefill this long
  double routed_expert_efficiency = 0.5;  // routed-expert GEMM throughput / dense GEMM throughput
};

double estimated_cost_per_token(const ModelShape& shape, const Plan& plan, const CostModel& cost);
double estimated_speedup(const ModelShape& shape, const Plan& plan, const CostModel& cost);

// A budget curve: plan_at(n) for n = 1..points, each more compressed than the one before
// (n layers condensed, or n experts pruned per layer). Returns the n the budget selects;
// bad input naming the budget, `curve` and the closest achievable point when none meets it.
int resolve_budget(const Budget& budget, const ModelShape& shape, int points,
                   const std::function<Plan(int)>& plan_at, const CostModel& cost, const std::string& curve);

}  // namespace cdmoe::search
