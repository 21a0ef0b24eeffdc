#include "finetune/adamw.h"

#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.h"

namespace cdmoe::finetune {
namespace {

std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) text += (i ? ", " : "") + std::to_string(sizes[i]);
  return text + "]";
}

}  // namespace

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, AdamWOptions options) : options_(options) {
  for (auto& [name, param] : parameters) {
    Slot slot;
    slot.name = name;
    slot.param = param;
    slot.master = param.scalar_type() == at::kFloat ? param : param.detach().to(at::kFloat).clone();
    slot.exp_avg = at::zeros_like(slot.master);
    slot.exp_avg_sq = at::zeros_like(slot.master);
    slot.decays = param.dim() >= 2;
    slots_.push_back(std::move(slot));
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, double(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, double(steps_));
  const double step_size = lr / correction1;
  const double root_correction2 = std::sqrt(correction2);
  for (Slot& slot : slots_) {
    at::Tensor grad = slot.param.grad();
    if (!grad.defined()) continue;  // a parameter the loss did not reach this step (torch skips it too)
    grad = grad.to(at::kFloat);
    if (slot.decays && options_.weight_decay != 0) slot.master.mul_(1.0 - lr * options_.weight_decay);
    slot.exp_avg.mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    slot.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    at::Tensor denominator = (slot.exp_avg_sq.sqrt() / root_correction2).add_(options_.eps);
    slot.master.addcdiv_(slot.exp_avg, denominator, -step_size);
    if (!slot.master.is_same(slot.param)) slot.param.copy_(slot.master);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Slot& slot : slots_) {
    out.emplace_back("master/" + slot.name, slot.master.detach());
    out.emplace_back("exp_avg/" + slot.name, slot.exp_avg);
    out.emplace_back("exp_avg_sq/" + slot.name, slot.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::function<at::Tensor(const std::string&)>& find, int64_t steps, const std::string& where) {
  at::NoGradGuard no_grad;
  // Every tensor is checked before the first is copied: a refused state leaves this one intact.
  std::vector<std::pair<at::Tensor*, at::Tensor>> copies;
  for (Slot& slot : slots_) {
    for (auto [prefix, target] : {std::pair{std::string("master/"), &slot.master}, {"exp_avg/", &slot.exp_avg},
                                  {"exp_avg_sq/", &slot.exp_avg_sq}}) {
      at::Tensor stored = find(prefix + slot.name);
      if (!stored.defined()) throw_bad_input(where + ": optimizer state has no tensor \"" + prefix + slot.name + "\"");
      if (stored.sizes() != target->sizes()) {
        throw_bad_input(where + ": optimizer state \"" + prefix + slot.name + "\" has shape " + shape_text(stored.sizes()) +
                        ", this run's is " + shape_text(target->sizes()));
      }
      copies.emplace_back(target, stored);
    }
  }
  for (auto& [target, stored] : copies) target->copy_(stored);
  for (Slot& slot : slots_) {
    if (!slot.master.is_same(slot.param)) slot.param.copy_(slot.master);
  }
  steps_ = steps;
}

}  // namespace cdmoe::finetune
