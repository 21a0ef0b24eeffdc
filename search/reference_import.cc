#include "search/reference_import.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"

namespace cdmoe::search {
namespace {

int non_negative_index(const Json& value, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 1000000) {
    throw_bad_input(where + ": " + describe_json(value) + " is not a layer or expert index");
  }
  return int(value.get<int64_t>());
}

int index_text(const std::string& text, const std::string& where) {
  if (text.empty() || text.size() > 7 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
    throw_bad_input(where + ": \"" + text + "\" is not an index");
  }
  return std::stoi(text);
}

std::vector<int> distinct_indices(const Json& list, const std::string& where) {
  if (!list.is_array()) throw_bad_input(where + ": expected a JSON array of indices");
  std::vector<int> out;
  std::set<int> seen;
  for (const Json& value : list) {
    int index = non_negative_index(value, where);
    if (!seen.insert(index).second) throw_bad_input(where + ": index " + std::to_string(index) + " is listed twice");
    out.push_back(index);
  }
  return out;
}

}  // namespace

std::vector<int> read_reference_layer_order(const std::string& path) {
  std::vector<int> order = distinct_indices(read_json_file(path), path);
  if (order.empty()) throw_bad_input(path + ": the layer order is empty");
  return order;
}

std::map<int, std::vector<int>> read_reference_experts(const std::string& path) {
  Json file = read_json_file(path);
  if (!file.is_object()) throw_bad_input(path + ": expected an object {\"layer\": [experts...]}");
  std::map<int, std::vector<int>> experts;
  for (const auto& [key, list] : file.items()) {
    const int layer = index_text(key, path + ": key");
    if (experts.count(layer)) throw_bad_input(path + ": key \"" + key + "\" names layer " + std::to_string(layer) + " again");
    experts[layer] = distinct_indices(list, path + ": layer \"" + key + "\"");
  }
  return experts;
}

std::map<std::pair<int, int>, double> read_reference_weights(const std::string& path) {
  Json file = read_json_file(path);
  if (!file.is_object()) throw_bad_input(path + ": expected an object {\"layer-expert\": [sum, count, mean]}");
  std::map<std::pair<int, int>, double> weights;
  for (const auto& [key, value] : file.items()) {
    std::string where = path + ": \"" + key + "\"";
    size_t dash = key.find('-');
    if (dash == std::string::npos) throw_bad_input(where + ": key is not \"layer-expert\"");
    int layer = index_text(key.substr(0, dash), where), expert = index_text(key.substr(dash + 1), where);
    if (weights.count({layer, expert})) {  // "0-1" and "00-1" name one entry: which would win is arbitrary
      throw_bad_input(where + ": names layer " + std::to_string(layer) + ", expert " + std::to_string(expert) + " again");
    }
    if (!value.is_array() || value.empty() || !value.back().is_number()) {
      throw_bad_input(where + ": expected [sum, count, mean] ending in a number");
    }
    double mean = value.back().get<double>();
    if (!std::isfinite(mean) || std::fabs(mean) > 1000) throw_bad_input(where + ": mean " + describe_json(value.back()) + " is not a weight in [-1000, 1000]");
    weights[{layer, expert}] = mean;
  }
  return weights;
}

std::vector<ReferencePlan> reference_plans(const ModelShape& shape, const ReferenceArtifacts& artifacts, int k,
                                           const std::vector<int>& layer_counts, const std::string& method) {
  std::vector<int> moe = shape.moe_layers();
  if (k < 0 || k > shape.num_routed_experts) {
    throw_bad_input("--k " + std::to_string(k) + " is not between 0 and the model's " + std::to_string(shape.num_routed_experts) + " routed experts");
  }
  for (int layer : artifacts.layer_order) {
    if (layer >= int(moe.size())) {
      throw_bad_input(artifacts.layer_order_file + ": MoE layer " + std::to_string(layer) + " is out of range: the model has " + std::to_string(moe.size()) +
                      " MoE layers (0.." + std::to_string(moe.size() - 1) + ", decoder layers " + std::to_string(moe.front()) + ".." +
                      std::to_string(moe.back()) + ")");
    }
  }
  auto condensed = [&](int relative) {
    LayerPlan lp{LayerOp::kCondense, {}, {}, {}};
    if (k == 0) return lp;
    auto experts = artifacts.expert_order.find(relative);
    if (experts == artifacts.expert_order.end()) throw_bad_input(artifacts.experts_file + ": no experts for MoE layer " + std::to_string(relative));
    if (int(experts->second.size()) < k) {
      throw_bad_input(artifacts.experts_file + ": MoE layer " + std::to_string(relative) + " lists " + std::to_string(experts->second.size()) +
                      " experts, --k is " + std::to_string(k));
    }
    for (int i = 0; i < k; ++i) {
      int expert = experts->second[size_t(i)];
      if (expert >= shape.num_routed_experts) {
        throw_bad_input(artifacts.experts_file + ": MoE layer " + std::to_string(relative) + ": expert " + std::to_string(expert) + " is out of range");
      }
      auto weight = artifacts.mean_weights.find({relative, expert});
      if (weight == artifacts.mean_weights.end()) {
        throw_bad_input(artifacts.weights_file + ": no entry \"" + std::to_string(relative) + "-" + std::to_string(expert) + "\"");
      }
      lp.experts.push_back(expert);
      lp.weights.push_back(weight->second);
    }
    return lp;
  };
  std::vector<ReferencePlan> plans;
  for (int n : layer_counts) {
    if (n < 1 || n > int(artifacts.layer_order.size())) {
      throw_bad_input("budget layers:" + std::to_string(n) + " is beyond the " + std::to_string(artifacts.layer_order.size()) + " layers of " +
                      artifacts.layer_order_file);
    }
    Plan plan;
    for (int i = 0; i < n; ++i) {
      int relative = artifacts.layer_order[size_t(i)];
      plan.set_layer(moe[size_t(relative)], condensed(relative));
    }
    plan.validate(shape, "reference plan");
    plans.push_back({method, "layers:" + std::to_string(n), plan});
  }
  return plans;
}

}  // namespace cdmoe::search
