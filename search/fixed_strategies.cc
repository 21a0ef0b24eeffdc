// Strategies that need no search evaluations: their budget points are known at once.
//   random: for each k and budget, n MoE layers and k experts per layer drawn with the seed.
//   plans:  explicit plans from a JSONL file, one per line: {"name": "...", "plan": {...}}
//           or a bare plan object {"layers": {...}}. A line may also name its "method" (default
//           "plans") and "budget" (default: the name), e.g. cdmoe-import-reference's lines
//           {"method": "reference_sr_k6", "budget": "layers:9", ...}, so they sit beside the
//           searched methods' points of the same budget.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/names.h"
#include "core/model_shape.h"
#include "core/random.h"
#include "search/book_strategy.h"
#include "search/strategies.h"

namespace cdmoe::search {
namespace {

class FixedStrategy : public Strategy {
 public:
  explicit FixedStrategy(std::vector<BudgetPoint> points) : points_(std::move(points)) {}
  std::vector<Candidate> next() override { return {}; }
  void record(const std::string& stage, const Plan&, const std::vector<Metric>&) override { unexpected(stage); }
  void record_failure(const std::string& stage, const Plan&) override { unexpected(stage); }
  bool finished() const override { return true; }
  std::vector<BudgetPoint> budget_points() const override { return points_; }
  std::vector<StageProgress> progress() const override { return {}; }

 private:
  [[noreturn]] static void unexpected(const std::string& stage) {
    throw_runtime("result for stage \"" + stage + "\": this strategy runs no search candidates");
  }
  std::vector<BudgetPoint> points_;
};

// `count` distinct items of `pool`, ascending (partial Fisher-Yates).
std::vector<int> draw_distinct(std::mt19937_64& rng, std::vector<int> pool, int count) {
  for (int i = 0; i < count; ++i) {
    size_t j = size_t(i) + size_t(uniform_below(rng, pool.size() - size_t(i)));
    std::swap(pool[size_t(i)], pool[j]);
  }
  pool.resize(size_t(count));
  std::sort(pool.begin(), pool.end());
  return pool;
}

std::vector<BudgetPoint> random_points(const ModelShape& shape, const SearchConfig& config) {
  check_experts_kept(shape, config.experts_kept);
  std::vector<int> layers = shape.moe_layers();
  std::vector<int> experts = first_experts(int(shape.num_routed_experts));
  std::mt19937_64 rng(config.seed);
  std::vector<BudgetPoint> points;
  for (int k : config.experts_kept) {
    auto plan_at = [&](int n) { return plan_changing_first_layers(shape, n, condensed_any(k)); };
    std::string method = "random_" + condense_method(k).substr(6);  // random_s, random_sr_k6
    for (const Budget& budget : config.budgets) {
      int n = resolve_budget(budget, shape, int(layers.size()), plan_at, config.cost_model, method);
      Plan plan;
      for (int layer : draw_distinct(rng, layers, n)) {
        plan.set_layer(layer, LayerPlan{LayerOp::kCondense, draw_distinct(rng, experts, k), {}, {}});
      }
      points.push_back(BudgetPoint{method, budget.text, plan, std::numeric_limits<double>::quiet_NaN()});
    }
  }
  return points;
}

void check_keys_of_plan_line(const Json& entry, const std::string& where) {
  for (const auto& [key, value] : entry.items()) {
    if (key != "name" && key != "plan" && key != "method" && key != "budget") {
      throw_bad_input(where + ": unknown field '" + key + "' (a line holds name, plan, method, budget)");
    }
  }
}

std::vector<BudgetPoint> plans_from_file(const ModelShape& shape, const SearchConfig& config) {
  if (config.plans_file.empty()) throw_bad_input("the plans strategy needs --plans FILE.jsonl");
  std::istringstream lines(read_text_file(config.plans_file));
  std::vector<BudgetPoint> points;
  std::vector<int> lines_of;  // the file line of each point
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = config.plans_file + ":" + std::to_string(number);
    Json entry = parse_json_text(line, where);
    if (!entry.is_object()) throw_bad_input(where + ": expected an object {\"name\": ..., \"plan\": {...}}");
    bool wrapped = entry.contains("plan");
    Plan plan = Plan::from_json(wrapped ? entry["plan"] : entry, where);
    plan.validate(shape, where);
    std::string name = wrapped ? string_or(entry, "name", "line:" + std::to_string(number), where)
                               : "line:" + std::to_string(number);
    std::string method = wrapped ? string_or(entry, "method", "plans", where) : "plans";
    std::string budget = wrapped ? string_or(entry, "budget", name, where) : name;
    if (wrapped) check_keys_of_plan_line(entry, where);
    check_method_name(method, where + ": method");
    check_printable_name(budget, where + ": budget");
    for (size_t i = 0; i < points.size(); ++i) {  // merged silently, two lines would look like one result
      if (points[i].method == method && points[i].budget == budget) {
        throw_bad_input(where + ": plan name \"" + budget + "\" is used again (first on line " + std::to_string(lines_of[i]) + ")");
      }
      if (points[i].plan == plan) {
        throw_bad_input(where + ": plan \"" + name + "\" is the same plan as \"" + points[i].budget + "\" on line " +
                        std::to_string(lines_of[i]));
      }
    }
    points.push_back(BudgetPoint{method, budget, plan, std::numeric_limits<double>::quiet_NaN()});
    lines_of.push_back(number);
  }
  if (points.empty()) throw_bad_input(config.plans_file + ": holds no plans");
  return points;
}

}  // namespace

std::unique_ptr<Strategy> make_random_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<FixedStrategy>(random_points(shape, config));
}

std::unique_ptr<Strategy> make_plans_strategy(const ModelShape& shape, const SearchConfig& config) {
  return std::make_unique<FixedStrategy>(plans_from_file(shape, config));
}

void check_method_name(const std::string& method, const std::string& what) {
  if (method.empty() || method.size() > 64 || method.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    throw_bad_input(what + " \"" + method + "\" must be lower_snake_case (at most 64 characters)");
  }
}

}  // namespace cdmoe::search
