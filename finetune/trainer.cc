#include "finetune/trainer.h"

#include <chrono>
#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "comm/collective.h"
#include "core/error.h"
#include "model/moe_model.h"

namespace cdmoe::finetune {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Gradients travel in buckets of this many bytes: big enough that the per-call latency does not
// matter, small enough that the staging copy stays a fraction of the model.
constexpr int64_t kBucketBytes = 32 << 20;

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> trainable_tensors(model::MoeModel& model, const Plan& plan,
                                                                  const TrainerOptions& options) {
  if (options.mode != TrainMode::kCondensed && !plan.is_original()) {
    throw_bad_input(std::string("--train ") + train_mode_name(options.mode) + " trains the original model; give no plan");
  }
  if (options.mode == TrainMode::kAll) return model.parameters();
  if (options.mode == TrainMode::kBlocks) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (int layer : options.layers) {
      if (!model.shape().is_moe_layer(layer)) throw_bad_input("--train blocks: layer " + std::to_string(layer) + " is not an MoE layer");
      for (auto& named : model.moe_block_parameters(layer)) out.push_back(std::move(named));
    }
    if (out.empty()) throw_bad_input("--train blocks: no MoE layer to train");
    return out;
  }
  std::vector<std::pair<std::string, at::Tensor>> out = model.condensed_parameters(plan);
  if (out.empty()) throw_bad_input("the plan condenses no layer: nothing to train in --train condensed");
  return out;
}

namespace {

// Reduces one dtype/device group of tensors in place through a flat staging bucket.
void reduce_bucket(comm::Collective& collective, std::vector<at::Tensor>& grads) {
  std::vector<at::Tensor> flat;
  for (const at::Tensor& g : grads) flat.push_back(g.flatten().to(at::kFloat));
  at::Tensor bucket = at::cat(flat).contiguous();
  collective.allreduce(bucket.data_ptr(), size_t(bucket.numel()), comm::ElementType::kFloat32, comm::ReduceOp::kSum);
  int64_t offset = 0;
  for (at::Tensor& g : grads) {
    g.copy_(bucket.narrow(0, offset, g.numel()).view(g.sizes()));
    offset += g.numel();
  }
}

}  // namespace

TrainMode train_mode_named(const std::string& name) {
  if (name == "condensed") return TrainMode::kCondensed;
  if (name == "all") return TrainMode::kAll;
  if (name == "blocks") return TrainMode::kBlocks;
  throw_bad_input("--train: \"" + name + "\" is not one of condensed, all, blocks");
}

const char* train_mode_name(TrainMode mode) {
  switch (mode) {
    case TrainMode::kCondensed: return "condensed";
    case TrainMode::kAll: return "all";
    case TrainMode::kBlocks: return "blocks";
  }
  return "?";
}

Batch make_batch(const std::vector<const TokenRow*>& rows, const at::Device& device) {
  int64_t width = 0;
  for (const TokenRow* row : rows) width = std::max<int64_t>(width, int64_t(row->ids.size()));
  const int64_t b = int64_t(rows.size());
  at::Tensor ids = at::zeros({b, width}, at::kLong), valid = at::zeros({b, width}, at::kLong),
             target = at::zeros({b, width}, at::kLong);
  Batch batch;
  for (int64_t r = 0; r < b; ++r) {
    const TokenRow& row = *rows[size_t(r)];
    const int64_t n = int64_t(row.ids.size());
    if (n == 0) continue;
    ids[r].narrow(0, 0, n).copy_(at::tensor(row.ids, at::kLong));
    valid[r].narrow(0, 0, n).fill_(1);
    std::vector<int64_t> counts(row.target.begin(), row.target.end());
    target[r].narrow(0, 0, n).copy_(at::tensor(counts, at::kLong));
    for (uint8_t t : row.target) batch.target_tokens += t;
  }
  batch.ids = ids.to(device);
  batch.valid = valid.to(device);
  batch.target = target.to(device);
  return batch;
}

Trainer::Trainer(model::MoeModel& model, Plan plan, TrainerOptions options, comm::Collective& collective)
    : model_(model),
      plan_(std::move(plan)),
      options_(options),
      collective_(collective),
      trainable_(trainable_tensors(model, plan_, options)),
      optimizer_(trainable_, options.adamw) {
  if (collective_.device_buffers() != model_.device().is_cuda()) {
    throw_bad_input("the " + collective_.backend() + " collective needs the model on " +
                    (collective_.device_buffers() ? "a CUDA device" : "the host"));
  }
  if (options_.mode == TrainMode::kCondensed) {
    for (const auto& [layer, lp] : plan_.layers()) {
      if (lp.op == LayerOp::kCondense) {
        first_trained_layer_ = layer;  // the plan's layers are in ascending order
        break;
      }
    }
  } else if (options_.mode == TrainMode::kBlocks) {
    first_trained_layer_ = *std::min_element(options_.layers.begin(), options_.layers.end());
  }
  for (auto& [name, tensor] : trainable_) tensor.requires_grad_(true);
}

Trainer::~Trainer() {
  // The model outlives the trainer: leave its tensors as plain inference weights again.
  for (auto& [name, tensor] : trainable_) {
    tensor.mutable_grad() = at::Tensor();
    tensor.requires_grad_(false);
  }
  model_.collect_balance_loss(false);
}

int64_t Trainer::trainable_elements() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : trainable_) total += tensor.numel();
  return total;
}

at::Tensor Trainer::loss_sum(const Batch& batch) {
  at::Tensor hidden;
  if (first_trained_layer_ == 0) {
    hidden = model_.embed(batch.ids);
  } else {
    at::NoGradGuard frozen;  // nothing before the first trained layer needs a graph
    hidden = model_.run_layers(model_.embed(batch.ids), batch.valid, 0, first_trained_layer_, plan_);
  }
  hidden = model_.run_layers(hidden, batch.valid, first_trained_layer_, int(model_.shape().num_layers), plan_);
  at::Tensor logits = model_.head(hidden);                                   // [b, T, V] float32
  const int64_t T = logits.size(1), V = logits.size(2);
  if (T < 2) return logits.sum() * 0.0;
  at::Tensor predicted = logits.narrow(1, 0, T - 1).reshape({-1, V});
  at::Tensor next = batch.ids.narrow(1, 1, T - 1).reshape({-1});
  at::Tensor counts = batch.target.narrow(1, 1, T - 1).reshape({-1}).to(at::kFloat);
  at::Tensor token_loss = at::cross_entropy_loss(predicted, next, {}, at::Reduction::None);
  return (token_loss * counts).sum();
}

StepStats Trainer::step(const std::vector<Batch>& micro_batches) {
  StepStats stats;
  const int64_t step = optimizer_.steps();
  stats.lr = learning_rate(options_.schedule, step);
  int64_t local_tokens = 0;
  for (const Batch& batch : micro_batches) local_tokens += batch.target_tokens;
  // The step's global target count first: every micro-batch's loss is divided by it, so the
  // summed gradients over micro-batches and ranks are the gradient of the step's mean loss.
  double counts[2] = {double(local_tokens), double(micro_batches.size())};
  sum_over_ranks(counts, 2);
  stats.tokens = int64_t(counts[0]);
  const double total_micro = counts[1];
  if (stats.tokens == 0) throw_runtime("training step " + std::to_string(step) + " has no target token on any rank");
  const bool balancing = options_.mode == TrainMode::kAll && options_.balance_coefficient > 0;
  model_.collect_balance_loss(balancing);

  double loss_total = 0, balance_total = 0;
  for (const Batch& batch : micro_batches) {
    Clock::time_point start = Clock::now();
    at::Tensor summed = loss_sum(batch);
    at::Tensor objective = summed / double(stats.tokens);
    if (balancing) {
      at::Tensor balance = model_.take_balance_loss();
      balance_total += balance.item<double>();
      objective = objective + balance * (options_.balance_coefficient / total_micro);
    }
    loss_total += summed.item<double>();
    stats.forward_s += seconds_since(start);
    start = Clock::now();
    objective.backward();
    stats.backward_s += seconds_since(start);
  }

  Clock::time_point start = Clock::now();
  reduce_gradients();
  double sums[2] = {loss_total, balance_total};
  sum_over_ranks(sums, 2);
  stats.loss = sums[0] / double(stats.tokens);
  stats.balance_loss = sums[1] / total_micro;
  stats.reduce_s = seconds_since(start);

  start = Clock::now();
  {
    at::NoGradGuard no_grad;
    double squares = 0;
    for (auto& [name, tensor] : trainable_) {
      if (tensor.grad().defined()) squares += tensor.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    stats.grad_norm = std::sqrt(squares);
    if (options_.clip_norm > 0) {
      // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
      const double scale = options_.clip_norm / (stats.grad_norm + 1e-6);
      if (scale < 1.0) {
        for (auto& [name, tensor] : trainable_) {
          if (tensor.grad().defined()) tensor.mutable_grad().mul_(scale);
        }
      }
    }
  }
  optimizer_.step(stats.lr);
  for (auto& [name, tensor] : trainable_) tensor.mutable_grad() = at::Tensor();
  stats.optimizer_s = seconds_since(start);
  return stats;
}

void Trainer::sum_over_ranks(double* values, size_t count) {
  if (collective_.size() == 1) return;
  if (!collective_.device_buffers()) {
    collective_.allreduce(values, count, comm::ElementType::kFloat64, comm::ReduceOp::kSum);
    return;
  }
  at::Tensor staged = at::from_blob(values, {int64_t(count)}, at::kDouble).to(model_.device());
  collective_.allreduce(staged.data_ptr(), count, comm::ElementType::kFloat64, comm::ReduceOp::kSum);
  at::Tensor back = staged.cpu();
  std::copy(back.data_ptr<double>(), back.data_ptr<double>() + count, values);
}

void Trainer::reduce_gradients() {
  if (collective_.size() == 1) return;
  // Every rank walks the same list in the same order; a gradient the loss did not reach on this
  // rank is zeros, so the buckets line up across ranks.
  std::vector<at::Tensor> bucket;
  int64_t bytes = 0;
  for (auto& [name, tensor] : trainable_) {
    if (!tensor.grad().defined()) tensor.mutable_grad() = at::zeros_like(tensor);
    bucket.push_back(tensor.mutable_grad());
    bytes += tensor.numel() * 4;
    if (bytes >= kBucketBytes) {
      reduce_bucket(collective_, bucket);
      bucket.clear();
      bytes = 0;
    }
  }
  if (!bucket.empty()) reduce_bucket(collective_, bucket);
}

std::pair<double, int64_t> Trainer::evaluate(const std::vector<Batch>& batches) {
  at::NoGradGuard no_grad;
  model_.collect_balance_loss(false);
  double sums[2] = {0, 0};
  for (const Batch& batch : batches) {
    sums[0] += loss_sum(batch).item<double>();
    sums[1] += double(batch.target_tokens);
  }
  sum_over_ranks(sums, 2);
  return {sums[0], int64_t(sums[1])};
}

}  // namespace cdmoe::finetune
