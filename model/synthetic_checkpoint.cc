#include "model/synthetic_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace cdmoe::model {

void write_synthetic_checkpoint(const std::string& dir, SyntheticShape s) {
  if (!s.tokenizer.empty()) s.vocab = int64_t(Tokenizer::load(s.tokenizer)->vocab_size());
  std::filesystem::create_directories(dir);
  nlohmann::json config = {{"model_type", "deepseek"}, {"hidden_size", s.hidden}, {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.heads}, {"num_hidden_layers", s.layers}, {"vocab_size", s.vocab},
                           {"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                           {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared},
                           {"num_experts_per_tok", s.top_k}, {"first_k_dense_replace", 1}, {"moe_layer_freq", 1},
                           {"norm_topk_prob", false}, {"max_position_embeddings", s.max_positions},
                           {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                           {"torch_dtype", s.bf16 ? "bfloat16" : "float32"}};
  std::ofstream(dir + "/config.json") << config.dump(2);
  at::manual_seed(s.seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  // Projections ~ N(0, 1/fan_in) as at initialisation, norms ~ 1: every block moves the
  // residual stream, so condensing or dropping one changes the output measurably.
  // With pretrain_init, DeepseekPreTrainedModel._init_weights: every Linear and the embedding
  // N(0, initializer_range = 0.02), every RMSNorm weight 1.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale) {
    at::Tensor t = at::randn(shape) * (s.pretrain_init ? 0.02 : scale);
    if (shape.size() == 1) t = s.pretrain_init ? at::ones(shape) : t + 1.0;
    tensors.emplace_back(name, s.bf16 ? t.to(at::kBFloat16) : t);
  };
  const int64_t D = s.hidden;
  const double per_D = 1.0 / std::sqrt(double(D));
  add("model.embed_tokens.weight", {s.vocab, D}, 1.0);
  add("model.norm.weight", {D}, 0.1);
  add("lm_head.weight", {s.vocab, D}, per_D);
  for (int64_t l = 0; l < s.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, 0.1);
    add(p + "post_attention_layernorm.weight", {D}, 0.1);
    for (const char* n : {"q", "k", "v", "o"}) add(p + "self_attn." + n + "_proj.weight", {D, D}, per_D);
    auto mlp = [&](const std::string& prefix, int64_t inner) {
      add(prefix + "gate_proj.weight", {inner, D}, per_D);
      add(prefix + "up_proj.weight", {inner, D}, per_D);
      add(prefix + "down_proj.weight", {D, inner}, 1.0 / std::sqrt(double(inner)));
    };
    if (l == 0) {
      mlp(p + "mlp.", s.dense_inner);
      continue;
    }
    add(p + "mlp.gate.weight", {s.experts, D}, per_D);
    for (int64_t e = 0; e < s.experts; ++e) mlp(p + "mlp.experts." + std::to_string(e) + ".", s.expert_inner);
    mlp(p + "mlp.shared_experts.", s.shared * s.expert_inner);
  }
  std::vector<TensorToWrite> out;
  for (auto& [name, t] : tensors) {
    out.push_back({name, s.bf16 ? DType::kBF16 : DType::kF32, t.sizes().vec(), t.data_ptr()});
  }
  write_safetensors(dir + "/model.safetensors", out);
  if (!s.tokenizer.empty()) {
    std::string source = std::filesystem::is_directory(s.tokenizer) ? s.tokenizer + "/tokenizer.json" : s.tokenizer;
    std::filesystem::copy_file(source, dir + "/tokenizer.json", std::filesystem::copy_options::overwrite_existing);
    auto config = std::filesystem::path(source).parent_path() / "tokenizer_config.json";  // BOS/EOS flags
    if (std::filesystem::exists(config)) {
      std::filesystem::copy_file(config, dir + "/tokenizer_config.json", std::filesystem::copy_options::overwrite_existing);
    }
  }
}

}  // namespace cdmoe::model
