#include "core/plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_shape.h"
#include "core/sha256.h"

namespace cdmoe {
namespace {

constexpr int kMaxLayerIndex = 1 << 20;

int parse_layer_key(const std::string& key, const std::string& where) {
  bool digits = !key.empty() && key.size() <= 7 &&
                std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || (key.size() > 1 && key[0] == '0')) {
    throw_bad_input(where + ": layer key \"" + key + "\" is not a decoder-layer index (0, 1, 2, ...)");
  }
  int layer = std::stoi(key);
  if (layer > kMaxLayerIndex) throw_bad_input(where + ": layer key \"" + key + "\" is out of range");
  return layer;
}

double finite_number(const Json& value, const std::string& where) {
  if (!value.is_number()) throw_bad_input(where + " must be a number, got " + describe_json(value));
  double number = value.get<double>();
  if (!std::isfinite(number)) throw_bad_input(where + " must be finite");
  return number == 0.0 ? 0.0 : number;  // -0 and 0 hash the same
}

// A condense weight scales an expert's output: routing weights lie in [0, 1], and one far
// outside any sensible scale (1e308 would overflow every activation to inf) is a mistake.
constexpr double kMaxAbsWeight = 1000;

double condense_weight(const Json& value, const std::string& where) {
  double number = finite_number(value, where);
  if (std::abs(number) > kMaxAbsWeight) {
    throw_bad_input(where + " is " + describe_json(value) + "; condense weights must lie within [-1000, 1000]");
  }
  return number;
}

std::vector<int> parse_experts(const Json& list, const std::string& where) {
  if (!list.is_array()) throw_bad_input(where + ": 'experts' must be an array of expert indices");
  std::vector<int> experts;
  std::set<int> seen;
  for (const Json& item : list) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() > kMaxLayerIndex) {
      throw_bad_input(where + ": 'experts' holds " + describe_json(item) + ", not an expert index");
    }
    int expert = item.get<int>();
    if (!seen.insert(expert).second) throw_bad_input(where + ": expert " + std::to_string(expert) + " is listed twice");
    experts.push_back(expert);
  }
  return experts;
}

void check_keys(const Json& object, std::initializer_list<const char*> allowed, const std::string& where) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; });
    if (!known) throw_bad_input(where + ": unknown field '" + it.key() + "'");
  }
}

LayerPlan parse_layer(const Json& entry, const std::string& where) {
  if (!entry.is_object()) throw_bad_input(where + ": expected an object like {\"op\": \"condense\", ...}");
  std::string op = require_string(entry, "op", where);
  LayerPlan layer;
  if (op == "drop" || op == "drop_block") {
    layer.op = op == "drop" ? LayerOp::kDrop : LayerOp::kDropBlock;
    check_keys(entry, {"op"}, where);
    return layer;
  }
  if (op == "prune") {
    layer.op = LayerOp::kPrune;
    check_keys(entry, {"op", "experts"}, where);
    layer.experts = parse_experts(require_field(entry, "experts", where), where);
    if (layer.experts.empty()) throw_bad_input(where + ": prune must keep at least one expert");
    return layer;
  }
  if (op != "condense") {
    throw_bad_input(where + ": op \"" + op + "\" is not one of condense, drop, prune, drop_block");
  }
  layer.op = LayerOp::kCondense;
  check_keys(entry, {"op", "experts", "weights", "shared_weight"}, where);
  layer.experts = parse_experts(require_field(entry, "experts", where), where);
  if (entry.contains("weights") && !entry["weights"].is_null()) {
    const Json& weights = entry["weights"];
    if (!weights.is_array()) throw_bad_input(where + ": 'weights' must be an array of numbers");
    if (weights.size() != layer.experts.size()) {
      throw_bad_input(where + ": 'weights' has " + std::to_string(weights.size()) + " entries for " +
                      std::to_string(layer.experts.size()) + " experts");
    }
    for (size_t i = 0; i < weights.size(); ++i) {
      layer.weights.push_back(condense_weight(weights[i], where + ": weights[" + std::to_string(i) + "]"));
    }
  }
  if (entry.contains("shared_weight") && !entry["shared_weight"].is_null()) {
    layer.shared_weight = condense_weight(entry["shared_weight"], where + ": 'shared_weight'");
  }
  return layer;
}

// Sorts experts ascending, carrying each expert's weight with it.
void sort_experts(LayerPlan& layer) {
  std::vector<size_t> order(layer.experts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return layer.experts[a] < layer.experts[b]; });
  std::vector<int> experts;
  std::vector<double> weights;
  for (size_t i : order) {
    experts.push_back(layer.experts[i]);
    if (!layer.weights.empty()) weights.push_back(layer.weights[i]);
  }
  layer.experts = std::move(experts);
  layer.weights = std::move(weights);
}

}  // namespace

const char* layer_op_name(LayerOp op) {
  switch (op) {
    case LayerOp::kCondense: return "condense";
    case LayerOp::kDrop: return "drop";
    case LayerOp::kPrune: return "prune";
    case LayerOp::kDropBlock: return "drop_block";
  }
  return "?";
}

bool LayerPlan::operator==(const LayerPlan& other) const {
  return op == other.op && experts == other.experts && weights == other.weights &&
         shared_weight == other.shared_weight;
}

Plan Plan::from_json(const Json& plan, const std::string& where) {
  if (!plan.is_object()) throw_bad_input(where + ": a plan must be a JSON object like {\"layers\": {...}}");
  check_keys(plan, {"layers"}, where);
  Plan result;
  if (!plan.contains("layers") || plan["layers"].is_null()) return result;
  const Json& layers = plan["layers"];
  if (!layers.is_object()) throw_bad_input(where + ": 'layers' must be an object keyed by layer index");
  for (auto it = layers.begin(); it != layers.end(); ++it) {
    int layer = parse_layer_key(it.key(), where);
    result.set_layer(layer, parse_layer(it.value(), where + ": layer \"" + it.key() + "\""));
  }
  return result;
}

Plan Plan::parse(std::string_view text, const std::string& where) {
  return from_json(parse_json_text(text, where), where);
}

Plan Plan::read_file(const std::string& path) { return parse(read_text_file(path), path); }

void Plan::set_layer(int layer, LayerPlan layer_plan) {
  sort_experts(layer_plan);
  layers_[layer] = std::move(layer_plan);
}

void Plan::validate(const ModelShape& shape, const std::string& where) const {
  for (const auto& [layer, layer_plan] : layers_) {
    std::string at = where + ": layer \"" + std::to_string(layer) + "\"";
    if (layer >= shape.num_layers) {
      throw_bad_input(at + " is out of range: the model has " + std::to_string(shape.num_layers) +
                      " decoder layers (0.." + std::to_string(shape.num_layers - 1) + ")");
    }
    if (removes_mlp(layer_plan.op)) continue;
    if (!shape.is_moe_layer(layer)) {
      throw_bad_input(at + " is a dense layer; only \"drop\" and \"drop_block\" apply to it, not \"" +
                      layer_op_name(layer_plan.op) + "\"");
    }
    for (int expert : layer_plan.experts) {
      if (expert >= shape.num_routed_experts) {
        throw_bad_input(at + ": expert " + std::to_string(expert) + " is out of range: the layer has " +
                        std::to_string(shape.num_routed_experts) + " routed experts");
      }
    }
  }
}

Json Plan::to_json() const {
  Json layers = Json::object();
  for (const auto& [layer, layer_plan] : layers_) {
    Json entry = {{"op", layer_op_name(layer_plan.op)}};
    if (!removes_mlp(layer_plan.op)) entry["experts"] = layer_plan.experts;
    if (!layer_plan.weights.empty()) entry["weights"] = layer_plan.weights;
    if (layer_plan.shared_weight) entry["shared_weight"] = *layer_plan.shared_weight;
    layers[std::to_string(layer)] = std::move(entry);
  }
  return Json{{"layers", std::move(layers)}};
}

// Written out directly (it is on the search's hot path, twice per candidate) but byte for byte
// what to_json().dump() gives: keys in std::map<std::string> order ("10" before "2"), numbers
// rendered by nlohmann itself. A test compares the two on random plans.
std::string Plan::canonical() const {
  std::vector<std::pair<std::string, const LayerPlan*>> entries;
  entries.reserve(layers_.size());
  for (const auto& [layer, layer_plan] : layers_) entries.emplace_back(std::to_string(layer), &layer_plan);
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out = "{\"layers\":{";
  for (size_t i = 0; i < entries.size(); ++i) {
    const LayerPlan& lp = *entries[i].second;
    if (i) out += ',';
    out += '"' + entries[i].first + "\":{";
    if (!removes_mlp(lp.op)) {
      out += "\"experts\":[";
      for (size_t e = 0; e < lp.experts.size(); ++e) {
        if (e) out += ',';
        out += std::to_string(lp.experts[e]);
      }
      out += "],";
    }
    out += "\"op\":\"";
    out += layer_op_name(lp.op);
    out += '"';
    if (lp.shared_weight) out += ",\"shared_weight\":" + Json(*lp.shared_weight).dump();
    if (!lp.weights.empty()) out += ",\"weights\":" + Json(lp.weights).dump();
    out += '}';
  }
  out += "}}";
  return out;
}

std::string Plan::hash() const { return sha256_hex(canonical()); }

}  // namespace cdmoe
