#include "search/budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/split.h"
#include "core/model_shape.h"
#include "core/param_count.h"
#include "core/plan.h"
#include "core/tensor_table.h"

namespace cdmoe::search {
namespace {

std::string trim(const std::string& text) {
  size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

double parse_number(const std::string& text, const std::string& where) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
    throw_bad_input(where + ": \"" + text + "\" is not a number");
  }
  return value;
}

int parse_layer_count(const std::string& text, const std::string& where) {
  double value = parse_number(text, where);
  if (value < 1 || value != std::floor(value) || value > 1e6) {
    throw_bad_input(where + ": layer count \"" + text + "\" must be a positive integer");
  }
  return int(value);
}

double parse_bytes(const std::string& text, const std::string& where) {
  static const std::pair<const char*, double> kSuffixes[] = {
      {"KiB", 1024.0}, {"MiB", 1024.0 * 1024}, {"GiB", 1024.0 * 1024 * 1024}, {"TiB", 1024.0 * 1024 * 1024 * 1024},
      {"KB", 1e3},     {"MB", 1e6},            {"GB", 1e9},                   {"TB", 1e12},
      {"B", 1.0}};
  for (const auto& [suffix, scale] : kSuffixes) {
    std::string s = suffix;
    if (text.size() > s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0) {
      return parse_number(trim(text.substr(0, text.size() - s.size())), where) * scale;
    }
  }
  return parse_number(text, where);
}

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return buffer;
}

}  // namespace

std::vector<Budget> parse_budgets(const std::string& spec, const std::string& where) {
  std::vector<Budget> budgets;
  for (const std::string& group : split_trimmed(spec, ";|")) {
    if (group.empty()) continue;
    size_t colon = group.find(':');
    if (colon == std::string::npos) {
      throw_bad_input(where + ": budget \"" + group + "\" is not KIND:VALUES (layers:, memory: or speed:)");
    }
    std::string kind = trim(group.substr(0, colon));
    std::string at = where + ": budget \"" + group + "\"";
    for (const std::string& item : split_trimmed(group.substr(colon + 1), ",")) {
      if (item.empty()) throw_bad_input(at + " has an empty value");
      if (kind == "layers") {
        size_t dash = item.find('-');
        int from = parse_layer_count(dash == std::string::npos ? item : item.substr(0, dash), at);
        int to = dash == std::string::npos ? from : parse_layer_count(item.substr(dash + 1), at);
        if (to < from) throw_bad_input(at + ": range " + item + " runs backwards");
        for (int n = from; n <= to; ++n) budgets.push_back({Budget::Kind::kLayers, double(n), "layers:" + std::to_string(n)});
      } else if (kind == "memory") {
        double value = parse_bytes(item, at);
        if (value <= 0) throw_bad_input(at + ": memory must be positive");
        // Up to 1 a fraction of the original; above it bytes, which come whole and with a size
        // no model has below 1 KiB: "1.5" or "900" is a mistyped fraction, not bytes.
        if (value > 1 && (value != std::floor(value) || value < 1024)) {
          throw_bad_input(at + ": memory:" + item + " is neither a fraction in (0, 1] nor a size in bytes "
                          "(whole, at least 1024, or with a unit: 20GiB)");
        }
        budgets.push_back({Budget::Kind::kMemory, value, "memory:" + item});
      } else if (kind == "speed") {
        double value = parse_number(item, at);
        if (value <= 0) throw_bad_input(at + ": speed-up must be positive");
        budgets.push_back({Budget::Kind::kSpeed, value, "speed:" + item});
      } else {
        throw_bad_input(at + ": kind \"" + kind + "\" is not one of layers, memory, speed");
      }
    }
  }
  if (budgets.empty()) throw_bad_input(where + ": no budget given");
  return budgets;
}

double estimated_cost_per_token(const ModelShape& s, const Plan& plan, const CostModel& cost) {
  // Every weight of the tensor table multiplies once per token (2 FLOPs; norms and biases are
  // counted alike, they are negligible), the embedding only as the tied head. A MoE layer's
  // routed experts run k of their E per token at the routed efficiency. Each block that keeps
  // its attention adds QK^T and AV over the causal average of half the sequence.
  const double attention_scores = 2 * double(s.query_key_width() + s.value_width()) * double(cost.sequence_length) / 2;
  std::vector<int64_t> routed_experts(size_t(s.num_layers), 0);  // E of each MoE layer (its router's rows)
  double total = 0;
  for (const TensorEntry& t : model_tensors(s, plan)) {
    if (t.role == TensorRole::kRouter) routed_experts[size_t(t.layer)] = t.shape[0];
    if (t.role == TensorRole::kInputNorm) total += attention_scores;
    double flops = 2 * double(t.numel());
    if (t.role == TensorRole::kEmbedding && !s.tie_word_embeddings) continue;  // a lookup
    if (is_routed_expert(t.role)) {
      const double E = double(routed_experts[size_t(t.layer)]);
      flops *= std::min(double(s.experts_per_token), E) / E / cost.routed_expert_efficiency;
    }
    total += flops;
  }
  return total;
}

double estimated_speedup(const ModelShape& shape, const Plan& plan, const CostModel& cost) {
  return estimated_cost_per_token(shape, Plan(), cost) / estimated_cost_per_token(shape, plan, cost);
}

int resolve_budget(const Budget& budget, const ModelShape& shape, int points,
                   const std::function<Plan(int)>& plan_at, const CostModel& cost, const std::string& curve) {
  std::string cannot = "budget " + budget.text + " cannot be met by " + curve;
  if (budget.kind == Budget::Kind::kLayers) {
    int n = int(budget.value);
    if (n > points) throw_bad_input(cannot + ": it has " + std::to_string(points) + " points (closest: layers:" + std::to_string(points) + ")");
    return n;
  }
  if (budget.kind == Budget::Kind::kMemory) {
    double target = budget.value;
    if (target > 1) {  // bytes at the checkpoint's dtype
      double original_bytes = double(count_parameters(shape, Plan()).total()) * double(bytes_per_element(shape.torch_dtype));
      target = budget.value / original_bytes;
    }
    for (int n = 1; n <= points; ++n) {
      if (parameter_ratio(shape, plan_at(n)) <= target + 1e-12) return n;
    }
    throw_bad_input(cannot + ": the smallest it reaches is memory:" + format_number(parameter_ratio(shape, plan_at(points))) +
                    " (" + std::to_string(points) + " points)");
  }
  for (int n = 1; n <= points; ++n) {
    if (estimated_speedup(shape, plan_at(n), cost) >= budget.value - 1e-12) return n;
  }
  throw_bad_input(cannot + ": the fastest it reaches is an estimated speed:" +
                  format_number(estimated_speedup(shape, plan_at(points), cost)) + " (" + std::to_string(points) + " points)");
}

}  // namespace cdmoe::search
