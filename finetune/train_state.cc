#include "finetune/train_state.h"

#include <sys/stat.h>

#include <cmath>
#include <set>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/error.h"
#include "model/safetensors.h"

namespace cdmoe::finetune {
namespace {

constexpr const char* kStateKey = "cdmoe_train_state";
constexpr int kFormat = 2;  // 2: with the tensors' checksum

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

// One tensor's share of the checksum: name, shape and bytes, so a renamed or reshaped tensor
// counts as damage too. Tensors enter in name order (the file's and the writer's).
void add_tensor(Checksum64& sum, const std::string& name, const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  sum.update(name.data(), name.size() + 1);  // with its terminating NUL: "ab" + "c" differs from "a" + "bc"
  sum.update(shape.data(), shape.size() * sizeof(int64_t));
  const uint64_t rank = shape.size();
  sum.update(&rank, sizeof rank);
  sum.update(data, bytes);
}

std::string tensors_checksum(const model::SafetensorsFile& file) {
  Checksum64 sum;
  for (const auto& [name, info] : file.header().tensors) {
    add_tensor(sum, name, info.shape, file.tensor_data(info), size_t(info.end - info.begin));
  }
  return sum.hex_digest();
}

Json stored_state(const model::SafetensorsFile& file) {
  auto it = file.header().metadata.find(kStateKey);
  if (it == file.header().metadata.end()) throw_bad_input(file.path() + ": not a cdmoe fine-tuning checkpoint (no " + kStateKey + ")");
  return parse_json_text(it->second, file.path() + " metadata " + kStateKey);
}

// The position, checked against the run: a step the run has, one history entry [step, loss, lr,
// tokens] per step done, in order, and tokens their sum.
TrainPosition checked_position(const Json& state, int64_t total_steps, const std::string& path) {
  return with_json_errors(path + " metadata " + kStateKey, [&] {
    TrainPosition position{state.at("step").get<int64_t>(), state.at("tokens").get<int64_t>(), state.at("history")};
    if (position.step < 0 || position.step > total_steps) {
      throw_bad_input(path + ": the checkpoint is at step " + std::to_string(position.step) + ", outside this run's 0.." +
                      std::to_string(total_steps));
    }
    if (!position.history.is_array() || int64_t(position.history.size()) != position.step) {
      throw_bad_input(path + ": the checkpoint's loss history does not hold one entry per step (step " +
                      std::to_string(position.step) + ")");
    }
    int64_t tokens = 0;
    for (size_t i = 0; i < position.history.size(); ++i) {
      const Json& entry = position.history[i];
      if (!entry.is_array() || entry.size() != 4 || entry[0].get<int64_t>() != int64_t(i) || entry[3].get<int64_t>() < 0) {
        throw_bad_input(path + ": the checkpoint's loss history entry " + std::to_string(i) + " is malformed");
      }
      (void)entry[1].get<double>(), (void)entry[2].get<double>();  // numbers (a NaN loss is stored as null: refused)
      tokens += entry[3].get<int64_t>();
    }
    if (tokens != position.tokens) {
      throw_bad_input(path + ": the checkpoint's token count " + std::to_string(position.tokens) +
                      " is not the sum of its steps' " + std::to_string(tokens));
    }
    position.held_out = state.value("held_out", Json::array());
    if (!position.held_out.is_array()) throw_bad_input(path + ": the checkpoint's held-out losses are not a list");
    std::set<std::pair<int64_t, std::string>> seen;
    for (size_t i = 0; i < position.held_out.size(); ++i) {
      const Json& entry = position.held_out[i];
      const bool ok = entry.is_array() && entry.size() == 4 && entry[0].is_number_integer() &&
                      (entry[1].is_number() || entry[1].is_null()) && entry[2].is_number_integer() && entry[3].is_string() &&
                      entry[0].get<int64_t>() >= 1 && entry[0].get<int64_t>() <= position.step && entry[2].get<int64_t>() >= 0 &&
                      seen.emplace(entry[0].get<int64_t>(), entry[3].get<std::string>()).second;
      if (!ok) throw_bad_input(path + ": the checkpoint's held-out loss entry " + std::to_string(i) + " is malformed");
    }
    return position;
  });
}

// Everything check_train_state checks, on an open file.
TrainPosition check_open_state(const model::SafetensorsFile& file, const Json& identity, int64_t total_steps) {
  const std::string& path = file.path();
  Json state = stored_state(file);
  if (!state.is_object() || !state.contains("format") || state["format"] != kFormat) {
    throw_bad_input(path + ": a checkpoint of another cdmoe version (format " +
                    (state.is_object() && state.contains("format") ? state["format"].dump() : std::string("absent")) +
                    ", this one writes " + std::to_string(kFormat) + "); delete it to start the run over");
  }
  if (!state.contains("identity")) throw_bad_input(path + ": the checkpoint has no run identity");
  check_same_run(state["identity"], identity, path);
  TrainPosition position = checked_position(state, total_steps, path);
  const Json stored_sum = state.value("tensors_checksum", Json());
  if (!stored_sum.is_string() || stored_sum.get<std::string>() != tensors_checksum(file)) {
    throw_bad_input(path + ": the checkpoint's tensors do not match their checksum (the file is damaged); delete it to "
                    "start the run over");
  }
  return position;
}

}  // namespace

std::vector<FinetuneStep> TrainPosition::steps() const {
  std::vector<FinetuneStep> out;
  for (const Json& entry : history) {
    out.push_back({entry[0].get<int64_t>(), entry[1].get<double>(), entry[2].get<double>(), entry[3].get<int64_t>()});
  }
  return out;
}

std::vector<HeldOutLoss> TrainPosition::held_out_losses() const {
  std::vector<HeldOutLoss> out;
  for (const Json& entry : held_out) {
    out.push_back({entry[0].get<int64_t>(), entry[1].is_null() ? NAN : entry[1].get<double>(), entry[2].get<int64_t>(),
                   entry[3].get<std::string>()});
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
  std::map<std::string, at::Tensor> hold;  // host copies in name order, alive while writing
  for (const auto& [name, tensor] : optimizer.state()) hold[name] = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  std::vector<model::TensorToWrite> tensors;
  Checksum64 sum;
  for (const auto& [name, tensor] : hold) {
    std::vector<int64_t> shape = tensor.sizes().vec();
    tensors.push_back({name, model::DType::kF32, shape, tensor.data_ptr<float>()});
    add_tensor(sum, name, shape, tensor.data_ptr<float>(), size_t(tensor.numel()) * sizeof(float));
  }
  Json state = {{"identity", identity}, {"step", position.step}, {"tokens", position.tokens},
                {"history", position.history}, {"held_out", position.held_out}, {"format", kFormat}, {"tensors_checksum", sum.hex_digest()}};
  model::write_safetensors(path, tensors, {{kStateKey, state.dump()}});
}

std::optional<TrainPosition> check_train_state(const std::string& path, const Json& identity, int64_t total_steps) {
  if (!file_exists(path)) return std::nullopt;
  model::SafetensorsFile file(path);
  return check_open_state(file, identity, total_steps);
}

std::optional<TrainPosition> load_train_state(const std::string& path, AdamW& optimizer, const Json& identity,
                                              int64_t total_steps) {
  if (!file_exists(path)) return std::nullopt;
  model::SafetensorsFile file(path);
  TrainPosition position = check_open_state(file, identity, total_steps);
  optimizer.load_state(
      [&](const std::string& name) {
        auto it = file.header().tensors.find(name);
        if (it == file.header().tensors.end()) return at::Tensor();
        const model::TensorInfo& info = it->second;
        if (info.dtype != model::DType::kF32) throw_bad_input(path + ": tensor \"" + name + "\" is not F32");
        return at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat);
      },
      position.step, path);
  return position;
}

}  // namespace cdmoe::finetune
