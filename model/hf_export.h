// A model under a plan written as a Hugging Face directory that MoeModel::load reads back:
// model.safetensors (F32) with what the plan keeps (condensed layers as their fused dense MLP,
// fine-tuned or not), the source directory's tokenizer files, and config.json last: the
// source's config with torch_dtype float32 and a "cdmoe" block {plan, plan_hash, source, format}
// plus `extra` keys. Each file is written atomically, config.json after the weights, so a
// reader that finds config.json finds the rest complete. Returns the parameters written.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/plan.h"

namespace cdmoe::model {

class MoeModel;

int64_t write_hf_files(const MoeModel& model, const Plan& plan, const std::string& source_dir, const std::string& dir,
                       const Json& extra = Json::object());

}  // namespace cdmoe::model
