// A random DeepSeekMoE-shaped checkpoint (BF16 on disk) for the benchmarks.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "model/safetensors.h"

namespace cdmoe::bench {

struct SyntheticShape {
  int64_t hidden = 1024, heads = 16, layers = 8, experts = 64, expert_inner = 352, shared = 2, top_k = 6;
  int64_t vocab = 8192, dense_inner = 2816;  // layer 0 is dense
};

inline void write_synthetic_checkpoint(const std::string& dir, const SyntheticShape& s) {
  std::filesystem::create_directories(dir);
  nlohmann::json config = {{"model_type", "deepseek"}, {"hidden_size", s.hidden}, {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.heads}, {"num_hidden_layers", s.layers}, {"vocab_size", s.vocab},
                           {"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                           {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared},
                           {"num_experts_per_tok", s.top_k}, {"first_k_dense_replace", 1}, {"moe_layer_freq", 1},
                           {"norm_topk_prob", false}, {"max_position_embeddings", 4096}, {"rms_norm_eps", 1e-6},
                           {"rope_theta", 10000.0}, {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"}};
  std::ofstream(dir + "/config.json") << config.dump(2);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale) {
    tensors.emplace_back(name, (at::randn(shape) * scale).to(at::kBFloat16));
  };
  const int64_t D = s.hidden;
  add("model.embed_tokens.weight", {s.vocab, D}, 1.0);
  add("model.norm.weight", {D}, 0.1);
  add("lm_head.weight", {s.vocab, D}, 0.03);
  for (int64_t l = 0; l < s.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, 0.1);
    add(p + "post_attention_layernorm.weight", {D}, 0.1);
    for (const char* n : {"q", "k", "v", "o"}) add(p + "self_attn." + n + "_proj.weight", {D, D}, 0.03);
    auto mlp = [&](const std::string& prefix, int64_t inner) {
      add(prefix + "gate_proj.weight", {inner, D}, 0.03);
      add(prefix + "up_proj.weight", {inner, D}, 0.03);
      add(prefix + "down_proj.weight", {D, inner}, 0.03);
    };
    if (l == 0) {
      mlp(p + "mlp.", s.dense_inner);
      continue;
    }
    add(p + "mlp.gate.weight", {s.experts, D}, 0.03);
    for (int64_t e = 0; e < s.experts; ++e) mlp(p + "mlp.experts." + std::to_string(e) + ".", s.expert_inner);
    mlp(p + "mlp.shared_experts.", s.shared * s.expert_inner);
  }
  std::vector<model::TensorToWrite> out;
  for (auto& [name, t] : tensors) out.push_back({name, model::DType::kBF16, t.sizes().vec(), t.data_ptr()});
  model::write_safetensors(dir + "/model.safetensors", out);
}

}  // namespace cdmoe::bench
