// A fine-tune's trained tensors kept as an artifact (schema 7's artifacts table): the tensors a
// Trainer made trainable (the condensed layers' dense MLPs, or the control's MoE blocks), as
// the model evaluated them (its compute dtype), in one safetensors file whose metadata says
// what trained them {train, layers, plan_hash}. The file is named by its content
// (trained-<sha256 prefix>.safetensors) and written atomically, so the same weights written
// twice (a fine-tune rerun after a preemption) leave one file, and a kill leaves none.
// Whoever records the artifact's sha256 in the database, and whoever applies it checks it: a
// file that differs is refused, never used.
#pragma once

#include <string>

#include "core/messages.h"
#include "core/plan.h"

namespace cdmoe::model {
class MoeModel;
}

namespace cdmoe::finetune {

class Trainer;

inline constexpr const char* kTrainedTensorsArtifact = "trained_tensors";

// Writes the trainer's trainable tensors into `dir` (created if missing). The artifact's path
// is "<dir's last component>/<file>": relative to the directory holding `dir`, which for
// DB.artifacts is the database's directory. Runtime error when the disk is full.
Artifact save_trained_tensors(const Trainer& trainer, const std::string& dir);

// Copies an artifact's tensors into `model` for `plan`: bad input naming `where` when the file
// at `path` is missing, its sha256 is not `sha256` (altered since it was recorded), it was
// trained for another plan, or its tensors are not exactly those its training mode makes
// trainable under `plan` (names and shapes). Nothing is copied unless everything checks.
// Condensed layers' MLPs stay pinned in the model's cache (MoeModel::condensed_parameters), so
// materialise() and every forward use the trained weights until forget_condensed.
void apply_trained_tensors(model::MoeModel& model, const Plan& plan, const std::string& path, const std::string& sha256,
                           const std::string& where);

}  // namespace cdmoe::finetune
