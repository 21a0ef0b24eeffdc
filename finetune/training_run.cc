#include "finetune/training_run.h"

#include <cmath>

#include "comm/collective.h"
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/moe_model.h"

namespace cdmoe::finetune {
namespace {

// Which rows a rank trains on at one step of one phase.
class StepRows {
 public:
  StepRows(const TokenRows& rows, uint64_t seed) : rows_(rows), seed_(seed) {}
  const TokenRow* at(int64_t position) {
    const int64_t n = int64_t(rows_.rows.size());
    const int64_t epoch = position / n;
    if (epoch != epoch_) {
      order_ = epoch_order(n, seed_, epoch);
      epoch_ = epoch;
    }
    return &rows_.rows[size_t(order_[size_t(position % n)])];
  }

 private:
  const TokenRows& rows_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace

int64_t steps_for_epochs(double epochs, int64_t rows, int64_t global_batch_rows) {
  return std::max<int64_t>(1, int64_t(std::ceil(epochs * double(rows) / double(global_batch_rows) - 1e-9)));
}

RunOutcome run_training(Trainer& trainer, const RunData& data, const RunOptions& options, const RunCallbacks& callbacks,
                        const std::atomic<int>& stop) {
  comm::Collective& collective = trainer.collective();
  const at::Device device = trainer.model().device();
  const int ranks = collective.size(), rank = collective.rank();
  const int64_t G = global_batch(options, ranks);
  const int64_t total = options.lm_steps + options.sft_steps;

  RunOutcome outcome;
  if (auto position = load_train_state(options.state_path, trainer.optimizer(), options.identity)) {
    outcome.position = *position;
    outcome.resumed_from = position->step;
  }
  StepRows lm(*data.lm, options.seed);
  std::optional<StepRows> sft;
  if (data.sft) sft.emplace(*data.sft, options.seed);

  auto checkpoint = [&](int64_t step) {
    if (rank == 0) save_train_state(options.state_path, trainer.optimizer(), options.identity, outcome.position);
    if (callbacks.on_checkpoint) callbacks.on_checkpoint(step);
  };
  auto evaluate = [&](int64_t step) {
    if (!data.eval || !callbacks.on_eval) return;
    // Held-out rows split across ranks in order; every rank takes part in the sums.
    std::vector<Batch> batches;
    std::vector<const TokenRow*> rows;
    for (size_t i = size_t(rank); i < data.eval->rows.size(); i += size_t(ranks)) {
      rows.push_back(&data.eval->rows[i]);
      if (int64_t(rows.size()) == options.batch_size) {
        batches.push_back(make_batch(rows, device));
        rows.clear();
      }
    }
    if (!rows.empty()) batches.push_back(make_batch(rows, device));
    auto [sum, tokens] = trainer.evaluate(batches);
    callbacks.on_eval(step, tokens ? sum / double(tokens) : NAN, tokens);
  };

  for (int64_t step = outcome.position.step; step < total; ++step) {
    const bool in_sft = step >= options.lm_steps;
    StepRows& stream = in_sft ? *sft : lm;
    const int64_t base = (in_sft ? step - options.lm_steps : step) * G;
    std::vector<Batch> micro_batches;
    for (int64_t m = 0; m < options.grad_accum; ++m) {
      std::vector<const TokenRow*> rows;
      for (int64_t i = 0; i < options.batch_size; ++i) rows.push_back(stream.at(base + (m * ranks + rank) * options.batch_size + i));
      micro_batches.push_back(make_batch(rows, device));
    }
    StepStats stats = trainer.step(micro_batches);
    outcome.position.step = step + 1;
    outcome.position.tokens += stats.tokens;
    outcome.position.history.push_back({step, stats.loss, stats.lr, stats.tokens});
    if (callbacks.on_step) callbacks.on_step(step, stats);
    const bool last = step + 1 == total;
    if (options.eval_every > 0 && (step + 1) % options.eval_every == 0 && !last) evaluate(step + 1);
    // Every rank must stop at the same step: agree on the flag.
    int64_t stopping = collective.size() == 1 ? stop.load() : 0;
    if (collective.size() > 1) {
      double flag = stop.load() ? 1 : 0;
      trainer.sum_over_ranks(&flag, 1);
      stopping = flag > 0;
    }
    if (last) break;
    if (stopping) {
      checkpoint(step + 1);
      outcome.stopped = true;
      return outcome;
    }
    if (options.checkpoint_every > 0 && (step + 1) % options.checkpoint_every == 0) checkpoint(step + 1);
  }
  evaluate(outcome.position.step);
  checkpoint(outcome.position.step);
  return outcome;
}

}  // namespace cdmoe::finetune
