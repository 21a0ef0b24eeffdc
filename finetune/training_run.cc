#include "finetune/training_run.h"

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "comm/collective.h"
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
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

// 62 bits of the SHA-256 of `text`: an int64 whose negation cannot overflow.
int64_t digest62(const std::string& text) {
  const std::string hex = sha256_hex(text).substr(0, 16);
  return int64_t(std::stoull(hex, nullptr, 16) >> 2);
}

// Whether every rank holds the same value (max equals min over the ranks).
bool same_on_every_rank(comm::Collective& collective, int64_t value) {
  return collective.allreduce_scalar(value, comm::ReduceOp::kMax) == -collective.allreduce_scalar(-value, comm::ReduceOp::kMax);
}

void check_finite_weights(const AdamW& optimizer, int64_t step) {
  for (const auto& [name, tensor] : optimizer.state()) {
    if (name.rfind("master/", 0) == 0 && !tensor.isfinite().all().item<bool>()) {
      throw_runtime("after step " + std::to_string(step) + " the trained tensor " + name.substr(7) +
                    " is not finite (NaN or inf): the learning rate is too high for this model; nothing was checkpointed");
    }
  }
}

}  // namespace

void check_same_identity_on_every_rank(Trainer& trainer, const Json& identity) {
  comm::Collective& collective = trainer.collective();
  if (collective.size() == 1 || same_on_every_rank(collective, digest62(identity.dump()))) return;
  std::string keys;
  for (const auto& [key, value] : identity.items()) keys += key + "\n";
  if (!same_on_every_rank(collective, digest62(keys))) {
    throw_bad_input("the ranks of this job were started with different runs (their run descriptions have other fields)");
  }
  for (const auto& [key, value] : identity.items()) {  // every rank walks the same keys
    if (!same_on_every_rank(collective, digest62(value.dump()))) {
      throw_bad_input("the ranks of this job were started with different runs: their " + key + " differs (rank " +
                      std::to_string(collective.rank()) + "'s is " + value.dump() + "); give every rank the same options and files");
    }
  }
  throw_runtime("the ranks' run descriptions differ, but no field does");
}

int64_t steps_for_epochs(double epochs, int64_t rows, int64_t global_batch_rows, const std::string& option) {
  const double steps = std::ceil(epochs * double(rows) / double(global_batch_rows) - 1e-9);
  if (!(steps <= double(kMaxSteps))) {
    throw_bad_input(option + " " + std::to_string(epochs) + " over " + std::to_string(rows) + " rows is " + std::to_string(steps) +
                    " steps; at most " + std::to_string(kMaxSteps));
  }
  return std::max<int64_t>(1, int64_t(steps));
}

RunOutcome run_training(Trainer& trainer, const RunData& data, const RunOptions& options, const RunCallbacks& callbacks,
                        const std::atomic<int>& stop) {
  comm::Collective& collective = trainer.collective();
  const at::Device device = trainer.model().device();
  const int ranks = collective.size(), rank = collective.rank();
  const int64_t G = global_batch(options, ranks);
  const int64_t total = options.lm_steps + options.sft_steps;

  RunOutcome outcome;
  std::optional<TrainPosition> position;
  try {
    position = load_train_state(options.state_path, trainer.optimizer(), options.identity, total);
  } catch (const Error& e) {
    if (!options.restart_unusable_checkpoint || e.kind() != ErrorKind::kBadInput) throw;
    outcome.discarded_checkpoint = e.what();
    if (rank == 0) std::remove(options.state_path.c_str());
  }
  if (position) {
    outcome.position = *position;
    outcome.resumed_from = position->step;
  }
  StepRows lm(*data.lm, options.seed);
  std::optional<StepRows> sft;
  if (data.sft) sft.emplace(*data.sft, options.seed);

  auto checkpoint = [&](int64_t step) {
    check_finite_weights(trainer.optimizer(), step);
    if (rank == 0) save_train_state(options.state_path, trainer.optimizer(), options.identity, outcome.position);
    if (callbacks.on_checkpoint) callbacks.on_checkpoint(step);
  };
  auto evaluate = [&](int64_t step) {
    if (!data.eval) return;
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
    const double loss = tokens ? sum / double(tokens) : NAN;
    // Kept in the position (checkpointed with the step after which it was measured): the curve
    // survives a resume, and a run resumed with other held-out text keeps both, by their hash.
    // (A run killed between its last checkpoint and its model files evaluates its last step again:
    // the new measurement replaces the old.)
    Json& held_out = outcome.position.held_out;
    for (auto it = held_out.begin(); it != held_out.end();) {
      it = (*it)[0] == step && (*it)[3] == data.eval->content_hash ? held_out.erase(it) : it + 1;
    }
    held_out.push_back({step, std::isfinite(loss) ? Json(loss) : Json(), tokens, data.eval->content_hash});
    if (callbacks.on_eval) callbacks.on_eval(step, loss, tokens);
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
    if (!std::isfinite(stats.loss)) {  // the same value on every rank: they fail together
      throw_runtime("training step " + std::to_string(step) + ": the loss is not finite (" + std::to_string(stats.loss) +
                    "): the learning rate is too high for this model; the last checkpoint is kept");
    }
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
