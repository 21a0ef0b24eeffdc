// Training throughput of finetune::Trainer with --train all on a demo-sized MoE (the shape the
// shipped demo model is to have: ~3M parameters, hidden 128, 1 dense + 5 MoE layers of 8 experts
// of 64, top-2, 1 shared, vocabulary 4096), batch × seq = 16 × 128 random tokens, 2 threads by
// default: tokens/s, seconds per step by phase, and the hours 3M tokens would take.
//   finetune_bench [--threads N] [--steps S] [--dir DIR]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "comm/collective.h"
#include "finetune/trainer.h"
#include "model/moe_model.h"
#include "model/synthetic_checkpoint.h"

using namespace cdmoe;

int main(int argc, char** argv) {
  int threads = 2, steps = 8;
  std::string dir = std::filesystem::temp_directory_path() / ("finetune_bench_" + std::to_string(getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
  }
  at::set_num_threads(threads);
  model::SyntheticShape shape;
  shape.hidden = 128, shape.heads = 4, shape.layers = 6, shape.experts = 8, shape.expert_inner = 64, shape.shared = 1;
  shape.top_k = 2, shape.vocab = 4096, shape.dense_inner = 512, shape.max_positions = 512, shape.bf16 = false;
  model::write_synthetic_checkpoint(dir, shape);
  auto model = model::MoeModel::load(dir);
  std::filesystem::remove_all(dir);
  int64_t parameters = 0;
  for (const auto& [name, tensor] : model->parameters()) parameters += tensor.numel();

  finetune::TrainerOptions options;
  options.mode = finetune::TrainMode::kAll;
  options.schedule = {1e-3, 0, finetune::Decay::kConstant, 0, steps};
  auto single = comm::make_single_collective();
  finetune::Trainer trainer(*model, Plan(), options, *single);
  const int64_t B = 16, T = 128;
  at::manual_seed(0);
  double forward = 0, backward = 0, optimizer = 0, total = 0;
  int64_t tokens = 0;
  for (int step = 0; step <= steps; ++step) {
    finetune::Batch batch{at::randint(shape.vocab, {B, T}, at::kLong), at::ones({B, T}, at::kLong), at::ones({B, T}, at::kLong),
                          B * (T - 1)};
    auto start = std::chrono::steady_clock::now();
    finetune::StepStats stats = trainer.step({batch});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step == 0) continue;  // warm-up step: allocator and thread pool
    forward += stats.forward_s, backward += stats.backward_s, optimizer += stats.optimizer_s, total += seconds;
    tokens += B * T;
  }
  const double rate = double(tokens) / total;
  std::printf("{\"bench\":\"train_all_demo_shape\",\"parameters\":%lld,\"threads\":%d,\"batch\":%lld,\"seq\":%lld,"
              "\"tokens_per_s\":%.0f,\"forward_s\":%.4f,\"backward_s\":%.4f,\"optimizer_s\":%.4f,\"hours_for_3M_tokens\":%.3f}\n",
              (long long)parameters, threads, (long long)B, (long long)T, rate, forward / steps, backward / steps,
              optimizer / steps, 3e6 / rate / 3600);
  return 0;
}
