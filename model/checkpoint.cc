#include "model/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"

namespace cdmoe::model {
namespace {

bool is_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

}  // namespace

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  struct stat info {};
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) throw_bad_input("model directory '" + dir + "' does not exist");
  config_path_ = dir + "/config.json";
  config_ = read_json_file(config_path_);

  std::string single = dir + "/model.safetensors";
  std::string index_path = dir + "/model.safetensors.index.json";
  std::map<std::string, std::string> expected_file;  // tensor -> shard, from the index
  std::vector<std::string> shard_names;
  if (is_file(index_path)) {
    Json index = read_json_file(index_path);
    const Json& weight_map = require_field(index, "weight_map", index_path);
    if (!weight_map.is_object()) throw_bad_input(index_path + ": 'weight_map' must be an object");
    for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
      if (!it->is_string()) throw_bad_input(index_path + ": weight_map['" + it.key() + "'] is not a file name");
      std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos) throw_bad_input(index_path + ": shard name '" + shard + "' has a '/'");
      expected_file[it.key()] = shard;
      if (std::find(shard_names.begin(), shard_names.end(), shard) == shard_names.end()) shard_names.push_back(shard);
    }
    for (const std::string& shard : shard_names) {
      if (!is_file(dir + "/" + shard)) throw_bad_input(index_path + " names shard '" + shard + "', which does not exist");
    }
  } else if (is_file(single)) {
    shard_names.push_back("model.safetensors");
  } else {
    throw_bad_input("model directory '" + dir + "' has neither model.safetensors nor model.safetensors.index.json");
  }

  for (const std::string& shard : shard_names) {
    files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + shard));
    const SafetensorsFile* file = files_.back().get();
    for (const auto& [name, tensor] : file->header().tensors) {
      auto [it, inserted] = tensors_.emplace(name, Located{file, &tensor});
      if (!inserted) throw_bad_input(file->path() + ": tensor '" + name + "' is also in " + it->second.file->path());
      auto expected = expected_file.find(name);
      if (!expected_file.empty() && (expected == expected_file.end() || expected->second != shard)) {
        throw_bad_input(file->path() + ": tensor '" + name + "' is not where " + index_path + " says");
      }
    }
  }
  for (const auto& [name, shard] : expected_file) {
    if (!tensors_.count(name)) throw_bad_input(index_path + " lists tensor '" + name + "' but " + shard + " lacks it");
  }
}

Checkpoint::Located Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? Located{} : it->second;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& [name, located] : tensors_) names.push_back(name);
  return names;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> paths;
  for (const auto& file : files_) paths.push_back(file->path());
  return paths;
}

std::string Checkpoint::fingerprint() const {
  constexpr uint64_t kWhole = 256ull << 20, kStride = 64ull << 20, kSample = 1ull << 20;
  Sha256 hash;
  hash.update(read_text_file(config_path_));
  for (const auto& file : files_) {
    std::string path = file->path();
    hash.update(path.substr(path.find_last_of('/') + 1));
    std::ifstream in(path, std::ios::binary);
    in.seekg(0, std::ios::end);
    uint64_t size = uint64_t(in.tellg());
    hash.update(std::to_string(size));
    std::vector<char> buffer(kSample);
    uint64_t stride = size <= kWhole ? kSample : kStride;
    for (uint64_t offset = 0; offset < size; offset += stride) {
      in.seekg(std::streamoff(offset));
      in.read(buffer.data(), std::streamsize(std::min(kSample, size - offset)));
      hash.update(buffer.data(), size_t(in.gcount()));
    }
    if (!in && !in.eof()) throw_bad_input(path + ": cannot be read");
  }
  return hash.hex_digest();
}

}  // namespace cdmoe::model
