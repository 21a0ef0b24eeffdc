#include "finetune/job.h"

#include "core/error.h"

namespace cdmoe::finetune {

TrainerOptions trainer_options(const FinetuneTask& spec, int64_t total_steps) {
  TrainerOptions options;
  options.mode = train_mode_named(spec.train);
  options.schedule = {spec.lr, spec.warmup, decay_named(spec.decay), spec.lr_floor, total_steps};
  options.adamw.weight_decay = spec.weight_decay;
  options.clip_norm = spec.clip;
  options.layers = spec.layers;
  return options;
}

RunOptions run_options(const FinetuneTask& spec) {
  RunOptions run;
  run.batch_size = spec.batch_size;
  run.lm_steps = spec.steps;
  run.seed = spec.seed;
  run.checkpoint_every = spec.checkpoint_every;
  return run;
}

std::vector<Metric> finetune_metrics(const TrainPosition& position, int64_t resumed_from) {
  std::vector<FinetuneStep> steps = position.steps();
  if (steps.empty()) throw_runtime("a fine-tune with no step done has nothing to record");
  std::vector<Metric> metrics = {{"finetune_loss", steps.back().loss, "nats"},
                                 {"finetune_tokens", double(position.tokens), "tokens"},
                                 {"finetune_resumed_from", double(resumed_from), "steps"}};
  std::vector<HeldOutLoss> held_out = position.held_out_losses();
  if (!held_out.empty() && held_out.back().after_steps == position.step) {
    metrics.push_back({"finetune_held_out_loss", held_out.back().loss, "nats"});
  }
  return metrics;
}

}  // namespace cdmoe::finetune
