// One fine-tuning job's specification, the one type both fine-tuning paths build their job from
// (finetune/job.h): a sweep's "finetune" task (the coordinator puts it in Task.params and a
// worker reads it back) and cdmoe-train (from its options, whose defaults are these). A budget
// point trains its condensed layers ("condensed"); the control trains the original model's MoE
// blocks of `layers` ("blocks"); cdmoe-train may also train "all". In a sweep the checkpoint of
// candidate ID is state_dir/candidate-ID.safetensors, so whichever worker takes a preempted
// fine-tune next resumes it, and the trained tensors go to artifact_dir (finetune/trained_tensors.h).
// `data_hash` is the data file's sha256 when the sweep started: a worker refuses the file if it
// has changed since. Torch-free value type; the defaults here are the only ones.
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

// Where a sweep's fine-tunes keep their checkpoints and their trained tensors: folders beside the
// database at `db_path`, named after it (an artifact's recorded path is relative to the
// database's directory, so a database moved with its folders still finds them).
inline std::string finetune_state_dir(const std::string& db_path) { return db_path + ".finetune"; }
inline std::string artifact_dir(const std::string& db_path) { return db_path + ".artifacts"; }

struct FinetuneTask {
  std::string data;       // training text (absolute path)
  std::string data_hash;  // its content hash (eval's Documents::content_hash) at the sweep's start
  std::string train = "condensed";
  std::vector<int> layers;  // "blocks" only
  int64_t steps = 0;
  double lr = 5e-5;              // peak learning rate
  int64_t warmup = 0;            // linear warmup steps
  std::string decay = "cosine";  // then cosine, linear or constant (finetune/schedule.h)
  double lr_floor = 0.0;         // fraction of lr the decay ends at
  double weight_decay = 0.01;    // AdamW, matrices only
  double clip = 1.0;             // global gradient-norm clip; 0: none
  int64_t batch_size = 8;        // rows per micro-batch
  int64_t seq_len = 256;
  int64_t checkpoint_every = 50;  // steps; 0: only when stopped and at the end
  uint64_t seed = 0;
  std::string state_dir;
  std::string artifact_dir;

  // The checkpoint of candidate `id`'s fine-tune: whichever worker runs it reads and writes it.
  std::string checkpoint_path(int64_t id) const { return state_dir + "/candidate-" + std::to_string(id) + ".safetensors"; }

  Json to_params() const;
  // What determines the fine-tune's result: every parameter but where the data, checkpoints and
  // artifacts are and how often it checkpoints (the data enters by its hash), so a database
  // moved with its folders resumes them.
  Json run_identity() const;
  // Bad input naming `where` and the field when one is missing, has the wrong type or is out of range.
  static FinetuneTask from_params(const Json& params, const std::string& where);
};

}  // namespace cdmoe
