// The model card (README.md with Hugging Face front matter) cdmoe-export writes beside an
// exported checkpoint: the base model, what the plan did to each layer, the candidate's metrics
// from the results database with their standard errors, the sweep's provenance, and the
// command that made it. Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/plan.h"
#include "db/report_queries.h"

namespace cdmoe {

struct ModelCardInput {
  Json source_config;         // the source model's config.json
  std::string source_dir;
  Plan plan;
  std::string format;         // "transformers" or "cdmoe"
  std::string stock_type;     // the exported config's model_type
  std::string dtype;
  std::string command;        // the command line that made it
  int64_t parameters = 0;     // written
  double parameter_ratio = 1; // of the original
  std::string db_path;           // from --db: the database, the candidate and what it records
  int64_t candidate = 0;
  std::optional<db::CandidateRecord> record;
};

std::string model_card(const ModelCardInput& input);

}  // namespace cdmoe
