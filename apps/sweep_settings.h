// cdmoe-sweep's options (command line or --config file), their validation and what they turn
// into: the sweep's stored config and provenance, the strategy, and each worker's options.
// validate_sweep reads and checks every input (model config and weights' headers, tokenizer,
// calibration and held-out text, tasks, strategy, objectives, budgets) so bad input fails
// before anything is written to the database.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/finetune_task.h"
#include "core/model_shape.h"
#include "db/store.h"
#include "search/strategy.h"
#include "worker/worker.h"

namespace cdmoe::apps {

struct SweepSettings {
  std::string model_dir, tokenizer_dir, calib_path, held_out_path, db_path, sweep_name;
  std::string strategy = "cdmoe";
  std::string experts_kept = "auto";  // "auto": 0 and the family's reference k (model::Family)
  std::string budgets;
  std::string objective = "js-logits", expert_objective = "js-hidden";
  std::string divergence_mean = "token";  // core/objectives.h DivergenceMean: token | sequence
  int beam_width = 1;
  double screen_fraction = 0;
  int64_t calib_samples = 100, seq_len = 256, batch_size = 8, task_limit = 0;
  bool packed = false;
  std::string routing_tokens = "calibration";  // worker::WorkerOptions::routing_full_documents when "full"
  std::string task_average = "acc";  // eval::TaskAverage
  std::string special_tokens = "none";  // eval::RequestSpecialTokens
  std::string tasks, benchmarks_dir, plans_file, device = "auto", dtype = "auto";
  int threads = 0;
  uint64_t seed = 0;
  int max_attempts = 3, in_flight = 2;
  eval::SpeedOptions speed;
  int64_t cache_mb = 4096;
  bool layer_cache = true, full_evaluation = true, progress = false, dry_run = false;
  // Fine-tuning of the budget points after the search (off without --finetune-data).
  std::string finetune_data;
  int64_t finetune_steps = 0, finetune_batch_size = FinetuneTask{}.batch_size, finetune_seq_len = 0,
          finetune_warmup = FinetuneTask{}.warmup;
  int64_t finetune_checkpoint_every = FinetuneTask{}.checkpoint_every;
  double finetune_lr = FinetuneTask{}.lr;
  bool finetune_control = true;
};

// nullopt after --help (printed when print_help). Bad usage throws (exit 2).
std::optional<SweepSettings> parse_sweep_settings(int argc, char** argv, bool print_help);

struct ValidatedSweep {
  ModelShape shape;
  db::SweepSpec spec;  // name, strategy, canonical config, seed, model path + hash, data hashes
  std::unique_ptr<search::Strategy> strategy;
  int64_t calibration_tokens = 0;
};

ValidatedSweep validate_sweep(const SweepSettings& settings);
void print_dry_run(const SweepSettings& settings, const ValidatedSweep& sweep, std::ostream& out);
// The fine-tuning template of the coordinator (nullopt without --finetune-data); checkpoints go
// beside the database, in DB.finetune/. `data_hashes` are the validated sweep's (the data file's
// hash travels with every task, so a worker sees when the file changed).
std::optional<FinetuneTask> finetune_task(const SweepSettings& settings, const Json& data_hashes);

// local_rank: this process among the job's processes on its node (picks its CUDA device).
worker::WorkerOptions worker_options(const SweepSettings& settings, int local_rank);

}  // namespace cdmoe::apps
