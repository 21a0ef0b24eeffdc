// A model under a plan written as a Hugging Face directory, in one of two forms:
//  - kCdmoe: the source's config.json plus a "cdmoe" block {plan, plan_hash, source, format,
//    + `extra`}, what the plan keeps by the family's names (condensed layers as their fused
//    dense MLP, fine-tuned or not): MoeModel::load reads it back, for every family and plan.
//  - kTransformers: a stock transformers checkpoint (model/stock_export.h): config.json of the
//    stock class, its tensors, and the plan and provenance in cdmoe.json, a file loaders
//    ignore. Refused (bad input) where the plan is not expressible.
// Both: weights in `dtype` (the source's torch_dtype by default; a tensor not finite in it is
// bad input naming the tensor), in shards of at most
// max_shard_bytes with model.safetensors.index.json past one (as save_pretrained writes them),
// streamed: each tensor is computed, converted on the host and written before the next, so the
// export holds one tensor beside what the model holds (one decoder layer under
// Residency::kLayers, whatever the model's size); the source directory's tokenizer files and
// generation_config.json; config.json last, so a reader
// that finds config.json finds the rest complete (the caller stages the directory and renames
// it, so a failed export leaves nothing that looks like a checkpoint). Returns the parameters
// written.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/plan.h"

namespace cdmoe::model {

class MoeModel;

enum class ExportFormat { kCdmoe, kTransformers };

// save_pretrained's default max_shard_size ("5GB", decimal).
inline constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

// A tensor to write, computed when the writer reaches it (on the model's device, in its
// compute dtype; `shape` is what it will be). `compute` may read a layer in and refers to the
// model and plan it was made from: call it while they live.
struct LazyTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::function<at::Tensor()> compute;
};

struct ExportOptions {
  ExportFormat format = ExportFormat::kCdmoe;
  std::string dtype;  // float32, bfloat16 or float16; empty: the source's (float32 when it says none)
  int64_t max_shard_bytes = kDefaultMaxShardBytes;
  Json extra = Json::object();  // provenance: kCdmoe's config "cdmoe" block, kTransformers' cdmoe.json
};

// The dtype a checkpoint's config.json declares (torch_dtype, or transformers 5's dtype), as
// ExportOptions::dtype names it; float32 when it declares none. Bad input naming the value when
// it is none of the three.
std::string source_dtype(const Json& config);
// Bad input naming `option` unless `name` is float32, bfloat16 or float16.
void check_export_dtype(const std::string& name, const std::string& option);

int64_t write_hf_files(const MoeModel& model, const Plan& plan, const std::string& source_dir, const std::string& dir,
                       const ExportOptions& options = {});

}  // namespace cdmoe::model
