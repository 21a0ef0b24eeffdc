// A fine-tuning checkpoint: one safetensors file holding the optimizer's state (float32 master
// weights of the trainable tensors, both Adam moments) and, in its metadata, the run's identity
// and position {identity, step, tokens, history, held_out} with a checksum of every tensor's name, shape
// and bytes (core/checksum.h). Written atomically (a temporary beside it, renamed), so a kill at
// any instant leaves the previous checkpoint or the new one, never a torn file; damaged later
// (flipped bytes, a truncated copy, edited metadata) it is refused before anything is used.
// The data position and the schedule are functions of the step (finetune/train_data.h,
// finetune/schedule.h) and the run has no other randomness, so this is all a resume needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/messages.h"
#include "finetune/adamw.h"

namespace cdmoe::finetune {

struct TrainPosition {
  int64_t step = 0;    // optimizer steps done
  int64_t tokens = 0;  // target tokens trained on, all ranks
  Json history = Json::array();  // [step, loss, lr, tokens] of every step done: the loss curve survives a resume
  Json held_out = Json::array();  // [after_steps, loss or null, tokens, data_hash] of every held-out evaluation

  std::vector<FinetuneStep> steps() const;       // the history as the database stores it
  std::vector<HeldOutLoss> held_out_losses() const;  // held_out, likewise
};

void save_train_state(const std::string& path, const AdamW& optimizer, const Json& identity, const TrainPosition& position);

// The checkpoint at `path` checked whole without loading it: readable, this format, of this run
// (`identity`), a position that fits a run of `total_steps` steps (step within it, one history
// entry per step, tokens their sum) and tensors that match their checksum. nullopt when there is
// no file (held-out evaluations: at most one per step and text, each after a step done; a
// checkpoint without them has none); bad input naming the file and what is wrong otherwise (another run's: the first field
// that differs and both values).
std::optional<TrainPosition> check_train_state(const std::string& path, const Json& identity, int64_t total_steps);

// check_train_state, then restores `optimizer` from the file (every tensor's name and shape
// checked before any is copied, so a refused file leaves the optimizer as it was).
std::optional<TrainPosition> load_train_state(const std::string& path, AdamW& optimizer, const Json& identity,
                                              int64_t total_steps);

// Bad input when `stored` differs from `expected`, naming `what`, the first differing field and
// both values.
void check_same_run(const Json& stored, const Json& expected, const std::string& what);

}  // namespace cdmoe::finetune
