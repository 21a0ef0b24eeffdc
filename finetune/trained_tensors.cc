#include "finetune/trained_tensors.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/sha256.h"
#include "finetune/trainer.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/weight_names.h"

namespace fs = std::filesystem;

namespace cdmoe::finetune {
namespace {

constexpr const char* kMetadataKey = "cdmoe_trained";

model::DType file_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return model::DType::kF32;
    case at::kBFloat16: return model::DType::kBF16;
    case at::kHalf: return model::DType::kF16;
    default: throw_runtime(std::string("trained tensors of dtype ") + at::toString(type) + " cannot be kept");
  }
}

at::ScalarType torch_dtype(model::DType type, const std::string& where) {
  switch (type) {
    case model::DType::kF32: return at::kFloat;
    case model::DType::kBF16: return at::kBFloat16;
    case model::DType::kF16: return at::kHalf;
    default: throw_bad_input(where + ": trained tensors are never " + model::dtype_name(type));
  }
}

}  // namespace

Artifact save_trained_tensors(const Trainer& trainer, const std::string& dir) {
  fs::create_directories(dir);
  std::map<std::string, at::Tensor> hold;  // host copies in name order, alive while writing
  for (const auto& [name, tensor] : trainer.trainable()) hold[name] = tensor.detach().to(at::kCPU).contiguous();
  std::vector<model::TensorToWrite> tensors;
  for (const auto& [name, tensor] : hold) {
    tensors.push_back({name, file_dtype(tensor.scalar_type()), tensor.sizes().vec(), tensor.data_ptr()});
  }
  const TrainerOptions& options = trainer.options();
  Json what = {{"train", train_mode_name(options.mode)}, {"layers", options.layers}, {"plan_hash", trainer.plan().hash()}};
  // Written under a name of this process, then renamed to its content's: a rerun writing the
  // same weights replaces the file with identical bytes.
  const std::string staging = (fs::path(dir) / ("trained-partial-" + std::to_string(::getpid()) + ".safetensors")).string();
  model::write_safetensors(staging, tensors, {{kMetadataKey, what.dump()}});
  Artifact artifact;
  artifact.kind = kTrainedTensorsArtifact;
  artifact.sha256 = sha256_file(staging);
  artifact.bytes = int64_t(fs::file_size(staging));
  const std::string file = "trained-" + artifact.sha256.substr(0, 16) + ".safetensors";
  fs::rename(staging, fs::path(dir) / file);
  artifact.path = (fs::path(dir).lexically_normal().filename() / file).string();
  if (fs::path(dir).lexically_normal().filename().empty()) artifact.path = file;
  return artifact;
}

void apply_trained_tensors(model::MoeModel& model, const Plan& plan, const std::string& path, const std::string& sha256,
                           const std::string& where) {
  if (!fs::is_regular_file(path)) {
    throw_bad_input(where + ": its trained tensors " + path + " are missing (the database records them; was the folder beside it "
                    "moved or deleted?)");
  }
  if (sha256_file(path) != sha256) {
    throw_bad_input(where + ": its trained tensors " + path + " have been altered since they were recorded (sha256 differs)");
  }
  model::SafetensorsFile file(path);
  auto found = file.header().metadata.find(kMetadataKey);
  if (found == file.header().metadata.end()) throw_bad_input(where + ": " + path + " is not a cdmoe trained-tensors file");
  Json what = parse_json_text(found->second, path + " metadata");
  TrainerOptions options;
  with_json_errors(path + " metadata", [&] {
    options.mode = train_mode_named(what.at("train").get<std::string>());
    options.layers = what.at("layers").get<std::vector<int>>();
    if (what.at("plan_hash").get<std::string>() != plan.hash()) {
      throw_bad_input(where + ": " + path + " was trained for another plan (plan_hash " +
                      what.at("plan_hash").get<std::string>().substr(0, 12) + "..., this candidate's " + plan.hash().substr(0, 12) + "...)");
    }
    return 0;
  });
  std::vector<std::pair<std::string, at::Tensor>> targets = trainable_tensors(model, plan, options);
  const auto& stored = file.header().tensors;
  if (stored.size() != targets.size()) {
    throw_bad_input(where + ": " + path + " holds " + std::to_string(stored.size()) + " tensors; training " +
                    train_mode_name(options.mode) + " makes " + std::to_string(targets.size()) + " trainable");
  }
  std::vector<at::Tensor> sources;
  for (const auto& [name, target] : targets) {
    auto info = stored.find(name);
    if (info == stored.end()) throw_bad_input(where + ": " + path + " has no tensor '" + name + "'");
    if (info->second.shape != target.sizes().vec()) {
      throw_bad_input(where + ": " + path + " tensor '" + name + "' is " + model::shape_text(info->second.shape) + ", the model's " +
                      model::shape_text(target.sizes().vec()));
    }
    sources.push_back(at::from_blob(const_cast<uint8_t*>(file.tensor_data(info->second)), info->second.shape,
                                    at::TensorOptions().dtype(torch_dtype(info->second.dtype, path))));
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < targets.size(); ++i) targets[i].second.copy_(sources[i]);
}

}  // namespace cdmoe::finetune
