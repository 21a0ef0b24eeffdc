#include "model/hf_export.h"

#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/stock_export.h"

namespace fs = std::filesystem;

namespace cdmoe::model {
namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                           "tokenizer.model", "generation_config.json"};

struct DtypeInfo {
  const char* name;  // ExportOptions::dtype, config.json torch_dtype
  at::ScalarType torch;
  DType file;
};
constexpr DtypeInfo kDtypes[] = {{"float32", at::kFloat, DType::kF32},
                                 {"bfloat16", at::kBFloat16, DType::kBF16},
                                 {"float16", at::kHalf, DType::kF16}};

const DtypeInfo& dtype_named(const std::string& name, const std::string& where) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return d;
  }
  throw_bad_input(where + ": \"" + name + "\" is not one of float32, bfloat16, float16");
}

// Writes `tensors` as save_pretrained does: one model.safetensors, or shards
// model-0000i-of-0000n.safetensors of at most max_shard_bytes each (a larger tensor alone) with
// model.safetensors.index.json. Only one shard's host copies exist at a time.
void write_weights(const std::vector<std::pair<std::string, at::Tensor>>& tensors, const DtypeInfo& dtype,
                   int64_t max_shard_bytes, const std::string& dir) {
  const int64_t element_bytes = int64_t(dtype_size(dtype.file));
  std::vector<std::vector<size_t>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t bytes = tensors[i].second.numel() * element_bytes;
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) shards.emplace_back(), shard_bytes = 0;
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  auto file_name = [&](size_t shard) {
    if (shards.size() == 1) return std::string("model.safetensors");
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", shard + 1, shards.size());
    return std::string(name);
  };
  Json weight_map = Json::object();
  for (size_t shard = 0; shard < shards.size(); ++shard) {
    std::vector<at::Tensor> hold;  // host copies in the written dtype, alive while writing
    std::vector<TensorToWrite> to_write;
    for (size_t i : shards[shard]) {
      const auto& [name, tensor] = tensors[i];
      hold.push_back(tensor.detach().to(at::kCPU, dtype.torch).contiguous());
      // A value the dtype cannot hold (float16's range ends at 65504) would ship as inf: refused.
      // amax and amin reduce without a temporary the size of the tensor, and carry NaN.
      if (hold.back().numel() > 0 &&
          (!std::isfinite(hold.back().amax().item<double>()) || !std::isfinite(hold.back().amin().item<double>()))) {
        throw_bad_input("--dtype " + std::string(dtype.name) + ": tensor '" + name + "' is not finite in " + dtype.name +
                        " (largest magnitude " + std::to_string(tensor.detach().abs().max().item<double>()) +
                        "); export it in float32 or bfloat16");
      }
      to_write.push_back({name, dtype.file, hold.back().sizes().vec(), hold.back().data_ptr()});
      weight_map[name] = file_name(shard);
    }
    write_safetensors(dir + "/" + file_name(shard), to_write, {{"format", "pt"}});
  }
  if (shards.size() > 1) {
    Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomically(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
  }
}

}  // namespace

std::string source_dtype(const Json& config) {
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (config.contains(key) && config[key].is_string()) return dtype_named(config[key].get<std::string>(), std::string("config.json ") + key).name;
  }
  return "float32";
}

void check_export_dtype(const std::string& name, const std::string& option) { (void)dtype_named(name, option); }

int64_t write_hf_files(const MoeModel& model, const Plan& plan, const std::string& source_dir, const std::string& dir,
                       const ExportOptions& options) {
  const Json source = read_json_file(source_dir + "/config.json");
  const DtypeInfo& dtype = dtype_named(options.dtype.empty() ? source_dtype(source) : options.dtype, "--dtype");
  Json provenance = {{"plan", plan.to_json()}, {"plan_hash", plan.hash()}, {"source", fs::absolute(source_dir).string()},
                     {"format", options.format == ExportFormat::kCdmoe ? 1 : 2}};
  for (const auto& [key, value] : options.extra.items()) provenance[key] = value;

  Json config;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  if (options.format == ExportFormat::kTransformers) {
    config = stock_config(source, plan);
    tensors = stock_tensors(model, plan, config);
    provenance["source_model_type"] = source.value("model_type", std::string());
  } else {
    config = source;
    config.erase("quantization_config");  // FP8 sources are written dequantised
    config["cdmoe"] = provenance;
    tensors = model.materialise(plan);
  }
  config.erase("dtype");
  config["torch_dtype"] = dtype.name;
  int64_t elements = 0;
  for (const auto& named : tensors) elements += named.second.numel();

  write_weights(tensors, dtype, options.max_shard_bytes, dir);
  for (const char* name : kTokenizerFiles) {
    fs::path from = fs::path(source_dir) / name;
    if (fs::exists(from)) fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  }
  if (options.format == ExportFormat::kTransformers) write_file_atomically(dir + "/cdmoe.json", provenance.dump(2) + "\n");
  write_file_atomically(dir + "/config.json", config.dump(2) + "\n");
  return elements;
}

}  // namespace cdmoe::model
