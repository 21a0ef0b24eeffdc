#include "model/hf_export.h"

#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/tensor_table.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "model/stock_export.h"
#include "model/weight_names.h"

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
// model.safetensors.index.json, in `tensors`' order. Streams: each tensor is computed,
// converted to the written dtype on the host, checked and written before the next is computed.
void write_weights(const std::vector<LazyTensor>& tensors, const DtypeInfo& dtype, int64_t max_shard_bytes,
                   const std::string& dir) {
  const int64_t element_bytes = int64_t(dtype_size(dtype.file));
  std::vector<std::vector<size_t>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t bytes = element_bytes * shape_numel(tensors[i].shape);
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
    std::vector<TensorToWrite> layout;
    for (size_t i : shards[shard]) {
      layout.push_back({tensors[i].name, dtype.file, tensors[i].shape, nullptr});
      weight_map[tensors[i].name] = file_name(shard);
    }
    at::Tensor held;  // the one host copy in the written dtype, alive until the next is asked for
    write_safetensors_streamed(dir + "/" + file_name(shard), layout, [&](size_t k) -> const void* {
      const LazyTensor& lazy = tensors[shards[shard][k]];
      held = at::Tensor();
      at::Tensor tensor = lazy.compute().detach();
      if (tensor.sizes().vec() != lazy.shape) {
        throw_runtime("export: tensor '" + lazy.name + "' came out " + shape_text(tensor.sizes().vec()) + ", laid out as " +
                      shape_text(lazy.shape));
      }
      held = tensor.to(at::kCPU, dtype.torch).contiguous();
      // A value the dtype cannot hold (float16's range ends at 65504) would ship as inf: refused.
      // amax and amin reduce without a temporary the size of the tensor, and carry NaN.
      if (held.numel() > 0 && (!std::isfinite(held.amax().item<double>()) || !std::isfinite(held.amin().item<double>()))) {
        throw_bad_input("--dtype " + std::string(dtype.name) + ": tensor '" + lazy.name + "' is not finite in " + dtype.name +
                        " (largest magnitude " + std::to_string(tensor.abs().max().item<double>()) +
                        "); export it in float32 or bfloat16");
      }
      return held.data_ptr();
    }, {{"format", "pt"}});
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
  std::vector<LazyTensor> tensors;
  if (options.format == ExportFormat::kTransformers) {
    config = stock_config(source, plan);
    tensors = stock_tensors(model, plan, config);
    provenance["source_model_type"] = source.value("model_type", std::string());
  } else {
    config = source;
    config.erase("quantization_config");  // FP8 sources are written dequantised
    config["cdmoe"] = provenance;
    for (MoeModel::Materialised& m : model.materialise_layout(plan)) {
      tensors.push_back({m.name, m.entry.shape, [&model, &plan, what = m] { return model.materialised_tensor(plan, what); }});
    }
  }
  config.erase("dtype");
  config["torch_dtype"] = dtype.name;
  int64_t elements = 0;
  for (const LazyTensor& tensor : tensors) elements += shape_numel(tensor.shape);

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
