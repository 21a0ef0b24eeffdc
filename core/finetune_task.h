// The parameters of a sweep's "finetune" task (ARCHITECTURE.md §1): what the coordinator puts in
// Task.params and a worker reads back. A budget point trains its condensed layers ("condensed");
// the control trains the original model's MoE blocks of `layers` ("blocks"). The checkpoint of
// candidate ID is state_dir/candidate-ID.safetensors, so whichever worker takes a preempted
// fine-tune next resumes it. `data_hash` is the data file's sha256 when the sweep started: a
// worker refuses the file if it has changed since. Torch-free value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json_fields.h"

namespace cdmoe {

// A task parameter beside FinetuneTask's (not part of the run): false when the coordinator
// records the parent's speed for this fine-tune (one architecture, one measurement), so the
// worker leaves the speed measurement out of its evaluation.
inline constexpr const char* kMeasureSpeedParam = "measure_speed";

struct FinetuneTask {
  std::string data;       // training text (absolute path)
  std::string data_hash;  // its content hash (eval's Documents::content_hash) at the sweep's start
  std::string train = "condensed";
  std::vector<int> layers;  // "blocks" only
  int64_t steps = 0;
  double lr = 1e-5;
  int64_t warmup = 0;
  int64_t batch_size = 8;
  int64_t seq_len = 256;
  int64_t checkpoint_every = 20;
  uint64_t seed = 0;
  std::string state_dir;

  Json to_params() const;
  // What determines the fine-tune's result: every parameter but where the data and checkpoints
  // are and how often it checkpoints (the data enters by its hash), so a database moved with its
  // checkpoint folder resumes them.
  Json run_identity() const;
  // Bad input naming `where` and the field when one is missing or has the wrong type.
  static FinetuneTask from_params(const Json& params, const std::string& where);
};

}  // namespace cdmoe
