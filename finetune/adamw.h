// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments, eps
// added after the square root), over a fixed list of parameters, with float32 master weights:
// a float32 parameter is its own master; a bfloat16 one is updated through a float32 copy and
// rounded back after every step. Weight decay applies to matrices only (dim >= 2), never to
// norms and biases. Reads each parameter's .grad() (reduced and clipped by the caller).
// Owns the optimizer state (on the parameters' device); not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace cdmoe::finetune {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, AdamWOptions options);

  void step(double lr);
  int64_t steps() const { return steps_; }

  // The state a checkpoint keeps, by name: "master/N" (float32 weights), "exp_avg/N", "exp_avg_sq/N".
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // Restores state() written by a run with the same parameters; `find` returns the stored tensor
  // of a name (undefined when absent). A missing tensor or another shape is bad input naming
  // `where` (the checkpoint), found before anything is copied.
  void load_state(const std::function<at::Tensor(const std::string&)>& find, int64_t steps, const std::string& where);

 private:
  struct Slot {
    std::string name;
    at::Tensor param;   // the model's tensor
    at::Tensor master;  // float32; the same tensor as param when param is float32
    at::Tensor exp_avg, exp_avg_sq;
    bool decays = true;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace cdmoe::finetune
