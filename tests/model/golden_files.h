// Reading the golden fixtures tests/fixtures/model/make_golden.py writes: ids.json / mask.json
// (a JSON matrix of integers) and golden/<plan>.safetensors (float32 tensors).
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "model/safetensors.h"

namespace cdmoe::testing {

inline at::Tensor read_matrix(const std::string& path) {
  Json rows = read_json_file(path);
  std::vector<int64_t> values;
  for (const Json& row : rows) for (const Json& v : row) values.push_back(v.get<int64_t>());
  return at::tensor(values, at::kLong).view({int64_t(rows.size()), int64_t(values.size() / rows.size())});
}

inline at::Tensor read_golden(const std::string& path, const std::string& name) {
  model::SafetensorsFile file(path);
  const model::TensorInfo& info = file.header().tensors.at(name);
  return at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat).clone();
}

}  // namespace cdmoe::testing
