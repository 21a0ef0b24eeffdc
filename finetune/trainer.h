// Trainer: one optimizer step at a time on a loaded MoeModel under a Plan, data-parallel over a
// comm::Collective (ARCHITECTURE.md §2). The model is not copied: the trainable tensors are the
// model's own (MoeModel::condensed_parameters or ::parameters), made to require gradients and
// updated in place; every other tensor is frozen (no gradient, not in the optimizer, unchanged).
//  - kCondensed: the fused dense MLP of each condensed layer of the plan. The layers before the
//    first condensed one run without autograd.
//  - kAll: every parameter of the model (plan must be the original), with DeepSeekMoE's expert
//    balance loss times `balance_coefficient` averaged over micro-batches and ranks.
//  - kBlocks: the MoE blocks (router, routed and shared experts, shared gate) of `layers` of the
//    original model: the fine-tuning control, which trains what condensing replaces. The
//    layers before the first of them run without autograd.
// Loss: next-token cross-entropy summed over target tokens (TokenRow::target; padding never
// counts), divided by the number of target tokens of the whole step over every micro-batch and
// rank, so N ranks with b rows each step as one rank with N·b rows. Gradients are summed over
// ranks in buckets, clipped by their global norm, and every rank applies the same AdamW update.
// Not thread-safe; the caller owns model and collective, which outlive the Trainer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/plan.h"
#include "finetune/adamw.h"
#include "finetune/schedule.h"
#include "finetune/train_data.h"

namespace cdmoe::comm {
class Collective;
}
namespace cdmoe::model {
class MoeModel;
}

namespace cdmoe::finetune {

enum class TrainMode { kCondensed, kAll, kBlocks };
TrainMode train_mode_named(const std::string& name);  // "condensed", "all", "blocks"; else bad input naming --train
const char* train_mode_name(TrainMode mode);

struct TrainerOptions {
  TrainMode mode = TrainMode::kCondensed;
  Schedule schedule;
  AdamWOptions adamw;
  double clip_norm = 1.0;              // global gradient-norm clip; <= 0: none
  double balance_coefficient = 0.001;  // kAll only
  std::vector<int> layers;             // kBlocks: the MoE layers whose blocks train
};

// The tensors a trainer with `options` trains on `model` under `plan`, named as
// MoeModel::parameters() names them (the model's own storage). Bad input as the Trainer.
std::vector<std::pair<std::string, at::Tensor>> trainable_tensors(model::MoeModel& model, const Plan& plan,
                                                                  const TrainerOptions& options);

// One micro-batch on the model's device: right-padded ids [b, T], valid [b, T] (1 token, 0
// padding), target [b, T] (1 where the token counts in the loss).
struct Batch {
  at::Tensor ids, valid, target;
  int64_t target_tokens = 0;
};
Batch make_batch(const std::vector<const TokenRow*>& rows, const at::Device& device);

struct StepStats {
  double loss = 0;          // mean cross-entropy per target token over the step, nats
  double balance_loss = 0;  // kAll: the balance term's mean over micro-batches and ranks
  double lr = 0;
  double grad_norm = 0;     // before clipping
  int64_t tokens = 0;       // target tokens of the step over every rank
  double forward_s = 0, backward_s = 0, reduce_s = 0, optimizer_s = 0;  // this rank's wall time
};

class Trainer {
 public:
  // Bad input when kCondensed and the plan condenses no layer (nothing to train), kAll or kBlocks
  // with a non-original plan, or kBlocks without MoE layers.
  Trainer(model::MoeModel& model, Plan plan, TrainerOptions options, comm::Collective& collective);
  ~Trainer();

  // One optimizer step (the optimizer's next) over this rank's micro-batches (every rank
  // passes the same number).
  StepStats step(const std::vector<Batch>& micro_batches);
  // Summed cross-entropy and target tokens of batches over every rank, no gradients.
  std::pair<double, int64_t> evaluate(const std::vector<Batch>& batches);

  const std::vector<std::pair<std::string, at::Tensor>>& trainable() const { return trainable_; }
  int64_t trainable_elements() const;
  AdamW& optimizer() { return optimizer_; }
  const Plan& plan() const { return plan_; }
  const TrainerOptions& options() const { return options_; }
  model::MoeModel& model() { return model_; }
  comm::Collective& collective() { return collective_; }
  // Sums host values over every rank in place (staged through device memory for NCCL).
  void sum_over_ranks(double* values, size_t count);

 private:
  at::Tensor loss_sum(const Batch& batch);  // summed target cross-entropy, with the graph
  void reduce_gradients();

  model::MoeModel& model_;
  Plan plan_;
  TrainerOptions options_;
  comm::Collective& collective_;
  int first_trained_layer_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> trainable_;
  AdamW optimizer_;
};

}  // namespace cdmoe::finetune
