// Plan: what a candidate does to each decoder layer (ARCHITECTURE.md §7). A value type; parsing checks
// structure (ops, keys, duplicates, counts), validate() checks it against a model's shape.
// canonical() is the hashed form: sorted keys, experts ascending with their weights, no spaces.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_fields.h"

namespace cdmoe {

struct ModelShape;

enum class LayerOp {
  kCondense,  // shared expert(s) + `experts`, dense, for every token, no router
  kDrop,      // the MLP/MoE block is skipped; attention stays
  kPrune,      // router restricted to `experts`
  kDropBlock,  // the whole decoder block (attention and MLP/MoE) is skipped: BlockDrop
};

const char* layer_op_name(LayerOp op);
// The layer keeps no MLP/MoE at all (drop and drop_block): no experts, no weights, any layer.
inline bool removes_mlp(LayerOp op) { return op == LayerOp::kDrop || op == LayerOp::kDropBlock; }

struct LayerPlan {
  LayerOp op = LayerOp::kCondense;
  std::vector<int> experts;             // ascending after parsing
  std::vector<double> weights;          // condense only; empty: calibration routing weights
  std::optional<double> shared_weight;  // condense only; absent: the family's default

  bool operator==(const LayerPlan& other) const;
};

class Plan {
 public:
  Plan() = default;  // the original model

  // Parse and check structure; errors are bad input naming `where` and the offending key.
  static Plan from_json(const Json& plan, const std::string& where);
  static Plan parse(std::string_view text, const std::string& where);
  static Plan read_file(const std::string& path);

  // Checks layer/expert indices against the model: layers in range, condense/prune only on
  // MoE layers, experts below the routed-expert count.
  void validate(const ModelShape& shape, const std::string& where) const;

  Json to_json() const;
  std::string canonical() const;  // the text that is hashed
  std::string hash() const;       // lower-case hex SHA-256 of canonical()

  bool is_original() const { return layers_.empty(); }
  const std::map<int, LayerPlan>& layers() const { return layers_; }
  // Sets (or replaces) one layer's operation; sorts experts with their weights.
  void set_layer(int layer, LayerPlan layer_plan);
  void reset_layer(int layer) { layers_.erase(layer); }

  bool operator==(const Plan& other) const { return layers_ == other.layers_; }
  bool operator!=(const Plan& other) const { return !(*this == other); }

 private:
  std::map<int, LayerPlan> layers_;
};

}  // namespace cdmoe
