// The bounds of what a fine-tuning run accepts from a user (cdmoe-train, cdmoe-sweep's
// --finetune-*): the one place they are stated, each with why. Torch-free constants.
#pragma once

#include <cstdint>

namespace cdmoe::finetune {

// The largest peak learning rate: AdamW moves each weight by about lr per step, so anything near
// 1 already destroys a trained model; larger values are typing mistakes.
inline constexpr double kMaxLearningRate = 1.0;
// More optimizer steps than any run takes (and a count that cannot overflow), and passes over
// the data.
inline constexpr int64_t kMaxSteps = 1000000000;
inline constexpr double kMaxEpochs = 1e6;
// Tokens one micro-batch of one rank holds (rows × sequence length): its activations must fit in
// memory, and 2^24 is beyond any device's; micro-batches per step likewise.
inline constexpr int64_t kMaxMicroBatchTokens = int64_t(1) << 24;
inline constexpr int64_t kMaxGradAccum = int64_t(1) << 16;
// The largest weight of the router balance loss (DeepSeekMoE trains with 0.001-0.01).
inline constexpr double kMaxBalanceCoefficient = 100.0;

}  // namespace cdmoe::finetune
