// A whole fine-tuning run on every rank of a Collective: the data order, the micro-batches of
// each rank, held-out evaluation, checkpoints and resume, and stopping on request. Used by
// cdmoe-train; every rank calls run_training with the same arguments.
//  - Data: optimizer step s of phase P (language-model rows, then SFT rows when given) trains
//    on positions s·G .. s·G+G-1 of P's stream (G = batch_size · grad_accum · ranks), position
//    p being row epoch_order(n, seed, p / n)[p % n]; rank r's micro-batch m holds positions
//    s·G + (m·ranks + r)·batch_size + i. One rank with batch 2b therefore sees exactly what two
//    ranks with b see, and a resumed run continues where the checkpoint's step says.
//  - Checkpoints (rank 0 writes; every rank holds the same weights): every checkpoint_every
//    steps, when a stop is requested (the ranks agree on the step), and at the end; a checkpoint
//    is checked whole before it is resumed (finetune/train_state.h).
//  - A step whose loss is not finite, or trained weights that are not at a checkpoint, fail the
//    run (a runtime error): nothing non-finite is ever checkpointed or returned.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "finetune/limits.h"
#include "finetune/train_state.h"
#include "finetune/trainer.h"

namespace cdmoe::finetune {

struct RunOptions {
  int64_t batch_size = 8;  // rows per micro-batch per rank
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t lm_steps = 0;    // optimizer steps on the language-model rows
  int64_t sft_steps = 0;   // then on the SFT rows
  uint64_t seed = 0;
  int64_t eval_every = 0;        // held-out loss every N steps (and at the end); 0: only at the end
  int64_t checkpoint_every = 0;  // 0: only when stopped and at the end
  std::string state_path;        // the checkpoint file
  Json identity;                 // what a checkpoint must match to be resumed
  // A checkpoint that cannot be used (damaged, another run's or another format's) is deleted
  // and the run starts from step 0 instead of being refused: for checkpoints that are a sweep's
  // own working files. The reason comes back in RunOutcome::discarded_checkpoint.
  bool restart_unusable_checkpoint = false;
};

struct RunData {
  const TokenRows* lm = nullptr;
  const TokenRows* sft = nullptr;   // optional
  const TokenRows* eval = nullptr;  // optional held-out rows
};

struct RunCallbacks {
  std::function<void(int64_t step, const StepStats&)> on_step;
  std::function<void(int64_t step, double loss, int64_t tokens)> on_eval;  // mean nats per token
  std::function<void(int64_t step)> on_checkpoint;
};

struct RunOutcome {
  TrainPosition position;
  int64_t resumed_from = 0;  // the step a checkpoint put the run at
  bool stopped = false;      // by `stop` before the last step (checkpointed)
  std::string discarded_checkpoint;  // restart_unusable_checkpoint: why the checkpoint was not used
};

// Global batch rows of one optimizer step.
inline int64_t global_batch(const RunOptions& options, int ranks) { return options.batch_size * options.grad_accum * ranks; }
// Optimizer steps for `epochs` passes over `rows` rows (at least one); bad input naming `option`
// when that is more than kMaxSteps.
int64_t steps_for_epochs(double epochs, int64_t rows, int64_t global_batch_rows, const std::string& option);

// Bad input on every rank unless every rank of the trainer's collective has the same
// `identity`, naming the first field that differs and this rank's value: a caller on several
// ranks checks it before anything is written, so ranks started with other data, steps or flags
// fail together instead of training what no single run gives (or waiting on each other).
void check_same_identity_on_every_rank(Trainer& trainer, const Json& identity);

// `stop` (set by a signal handler) is polled after every step.
RunOutcome run_training(Trainer& trainer, const RunData& data, const RunOptions& options, const RunCallbacks& callbacks,
                        const std::atomic<int>& stop);

}  // namespace cdmoe::finetune
