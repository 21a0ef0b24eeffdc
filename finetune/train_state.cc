#include "finetune/train_state.h"

#include <sys/stat.h>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/safetensors.h"

namespace cdmoe::finetune {
namespace {

constexpr const char* kStateKey = "cdmoe_train_state";

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

Json stored_state(const model::SafetensorsFile& file) {
  auto it = file.header().metadata.find(kStateKey);
  if (it == file.header().metadata.end()) throw_bad_input(file.path() + ": not a cdmoe fine-tuning checkpoint (no " + kStateKey + ")");
  return parse_json_text(it->second, file.path() + " metadata " + kStateKey);
}

}  // namespace

std::vector<FinetuneStep> TrainPosition::steps() const {
  std::vector<FinetuneStep> out;
  for (const Json& entry : history) {
    out.push_back({entry[0].get<int64_t>(), entry[1].get<double>(), entry[2].get<double>(), entry[3].get<int64_t>()});
  }
  return out;
}

void check_same_run(const Json& stored, const Json& expected, const std::string& what) {
  if (stored == expected) return;
  for (const auto& [key, value] : expected.items()) {
    if (!stored.contains(key) || stored.at(key) != value) {
      throw_bad_input(what + " belongs to another run: its " + key + " is " +
                      (stored.contains(key) ? stored.at(key).dump() : std::string("absent")) + ", this run's is " +
                      value.dump());
    }
  }
  for (const auto& [key, value] : stored.items()) {
    if (!expected.contains(key)) throw_bad_input(what + " belongs to another run: it has " + key + " = " + value.dump());
  }
}

void save_train_state(const std::string& path, const AdamW& optimizer, const Json& identity, const TrainPosition& position) {
  std::vector<at::Tensor> hold;  // keeps the host copies alive while writing
  std::vector<model::TensorToWrite> tensors;
  for (const auto& [name, tensor] : optimizer.state()) {
    hold.push_back(tensor.detach().to(at::kCPU, at::kFloat).contiguous());
    tensors.push_back({name, model::DType::kF32, hold.back().sizes().vec(), hold.back().data_ptr<float>()});
  }
  Json state = {{"identity", identity}, {"step", position.step}, {"tokens", position.tokens},
                {"history", position.history}, {"format", 1}};
  model::write_safetensors(path, tensors, {{kStateKey, state.dump()}});
}

std::optional<TrainPosition> stored_train_position(const std::string& path) {
  if (!file_exists(path)) return std::nullopt;
  model::SafetensorsFile file(path);
  Json state = stored_state(file);
  return TrainPosition{state.at("step").get<int64_t>(), state.at("tokens").get<int64_t>(), state.at("history")};
}

std::optional<TrainPosition> load_train_state(const std::string& path, AdamW& optimizer, const Json& identity) {
  if (!file_exists(path)) return std::nullopt;
  model::SafetensorsFile file(path);
  Json state = stored_state(file);
  check_same_run(state.at("identity"), identity, path);
  TrainPosition position{state.at("step").get<int64_t>(), state.at("tokens").get<int64_t>(), state.at("history")};
  optimizer.load_state(
      [&](const std::string& name) {
        auto it = file.header().tensors.find(name);
        if (it == file.header().tensors.end()) return at::Tensor();
        const model::TensorInfo& info = it->second;
        if (info.dtype != model::DType::kF32) throw_bad_input(path + ": tensor \"" + name + "\" is not F32");
        return at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat);
      },
      position.step);
  return position;
}

}  // namespace cdmoe::finetune
