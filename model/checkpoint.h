// A Hugging Face model directory: config.json plus model.safetensors, or the shards that
// model.safetensors.index.json lists. Torch-free. Files stay memory-mapped while it lives.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "model/safetensors.h"

namespace cdmoe::model {

class Checkpoint {
 public:
  // Bad input naming the file when config.json, the weights or a listed shard are missing or
  // malformed, or when a tensor is in two shards or not where the index says.
  explicit Checkpoint(const std::string& dir);

  struct Located {
    const SafetensorsFile* file = nullptr;
    const TensorInfo* info = nullptr;
  };

  const std::string& dir() const { return dir_; }
  const Json& config() const { return config_; }
  const std::string& config_path() const { return config_path_; }
  // nullptr info when the checkpoint has no tensor of that name.
  Located find(const std::string& name) const;
  std::vector<std::string> tensor_names() const;
  std::vector<std::string> files() const;  // the safetensors files, as paths
  // sha256 of config.json and the weights: every byte of files up to 256 MiB; of larger ones
  // the header and 1 MiB in every 64 MiB (hashing 30 GB would cost minutes at every start).
  std::string fingerprint() const;

 private:
  std::string dir_;
  std::string config_path_;
  Json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Located> tensors_;
};

}  // namespace cdmoe::model
