#include "model/hf_export.h"

#include <filesystem>

#include <ATen/ATen.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/moe_model.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;

namespace cdmoe::model {
namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                           "tokenizer.model", "generation_config.json"};

}  // namespace

int64_t write_hf_files(const MoeModel& model, const Plan& plan, const std::string& source_dir, const std::string& dir,
                       const Json& extra) {
  std::vector<std::pair<std::string, at::Tensor>> tensors = model.materialise(plan);
  std::vector<TensorToWrite> to_write;
  int64_t elements = 0;
  for (auto& [name, tensor] : tensors) {
    tensor = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    to_write.push_back({name, DType::kF32, tensor.sizes().vec(), tensor.data_ptr<float>()});
    elements += tensor.numel();
  }
  Json config = read_json_file(source_dir + "/config.json");
  config["torch_dtype"] = "float32";
  config.erase("quantization_config");  // FP8 sources are written dequantised
  Json block = {{"plan", plan.to_json()}, {"plan_hash", plan.hash()}, {"source", fs::absolute(source_dir).string()},
                {"format", 1}};
  for (const auto& [key, value] : extra.items()) block[key] = value;
  config["cdmoe"] = block;

  write_safetensors(dir + "/model.safetensors", to_write, {{"format", "pt"}});
  for (const char* name : kTokenizerFiles) {
    fs::path from = fs::path(source_dir) / name;
    if (fs::exists(from)) fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  }
  write_file_atomically(dir + "/config.json", config.dump(2) + "\n");
  return elements;
}

}  // namespace cdmoe::model
