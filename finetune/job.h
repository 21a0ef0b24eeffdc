// A fine-tuning job built from its one spec (core/finetune_task.h): the trainer's and run's
// options, and the metrics every fine-tune records, whichever path ran it (cdmoe-sweep's
// fine-tune task or cdmoe-train). The two paths differ only in where their data, checkpoints
// and records go.
#pragma once

#include <cstdint>
#include <vector>

#include "core/finetune_task.h"
#include "core/messages.h"
#include "finetune/training_run.h"

namespace cdmoe::finetune {

// The trainer's options for a run of `total_steps` optimizer steps (the spec's steps, plus any
// SFT steps cdmoe-train adds). Bad input naming the field for an unknown train mode or decay.
TrainerOptions trainer_options(const FinetuneTask& spec, int64_t total_steps);

// Batch size, language-model steps, seed and checkpoint interval of the spec; the caller adds
// where the checkpoint goes and the run's identity.
RunOptions run_options(const FinetuneTask& spec);

// What a finished fine-tune records: finetune_loss (the last step's), finetune_tokens,
// finetune_resumed_from (the step a checkpoint put the last process at), and
// finetune_held_out_loss when the last held-out evaluation came after the last step.
std::vector<Metric> finetune_metrics(const TrainPosition& position, int64_t resumed_from);

}  // namespace cdmoe::finetune
