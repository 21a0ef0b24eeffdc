#include "model/synthetic_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/fp8.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "model/weight_names.h"

namespace cdmoe::model {

namespace {

constexpr int64_t kFp8Block = 128;  // DeepSeek-V3's weight_block_size

// config.json for the family, with its own keys: layer 0 dense (deepseek*, qwen*), `shared`
// shared experts (deepseek*: n_shared_experts; qwen2_moe: one shared expert that wide).
nlohmann::json synthetic_config(const SyntheticShape& s) {
  nlohmann::json config = {{"model_type", s.family}, {"hidden_size", s.hidden}, {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.heads}, {"num_hidden_layers", s.layers}, {"vocab_size", s.vocab},
                           {"num_experts_per_tok", s.top_k}, {"max_position_embeddings", s.max_positions},
                           {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                           {"torch_dtype", s.bf16 ? "bfloat16" : "float32"}};
  if (s.family == "deepseek") {
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"moe_layer_freq", 1}, {"norm_topk_prob", false}});
  } else if (s.family == "qwen2_moe" || s.family == "qwen3_moe") {
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"num_experts", s.experts}, {"mlp_only_layers", {0}}, {"decoder_sparse_step", 1},
                   {"norm_topk_prob", s.family == "qwen3_moe"}});
    if (s.family == "qwen2_moe") config["shared_expert_intermediate_size"] = s.shared * s.expert_inner;
  } else if (s.family == "deepseek_v3") {  // MLA (q LoRA), two groups of experts
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"q_lora_rank", s.hidden / 2}, {"kv_lora_rank", s.kv_lora_rank}, {"qk_nope_head_dim", s.hidden / s.heads},
                   {"qk_rope_head_dim", s.qk_rope_head_dim}, {"v_head_dim", s.hidden / s.heads}, {"n_group", s.experts % 2 ? 1 : 2},
                   {"topk_group", 1}, {"routed_scaling_factor", 2.5}, {"norm_topk_prob", true}});
  } else if (s.family == "deepseek_v2") {  // V2-Lite-shaped MLA (no q LoRA), group-limited greedy routing
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"q_lora_rank", nullptr}, {"kv_lora_rank", s.kv_lora_rank}, {"qk_nope_head_dim", s.hidden / s.heads},
                   {"qk_rope_head_dim", s.qk_rope_head_dim}, {"v_head_dim", s.hidden / s.heads}, {"topk_method", "group_limited_greedy"},
                   {"n_group", s.experts % 2 ? 1 : 2}, {"topk_group", 1}, {"routed_scaling_factor", 2.0}});
  } else if (s.family == "glm4_moe") {  // GQA with q/k/v biases, q/k norms, half the head rotary
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"head_dim", s.hidden / s.heads}, {"partial_rotary_factor", 0.5}, {"attention_bias", true},
                   {"use_qk_norm", true}, {"n_group", s.experts % 4 ? 1 : 2}, {"topk_group", 1},
                   {"routed_scaling_factor", 2.5}, {"norm_topk_prob", true}});
  } else if (s.family == "mixtral") {
    config.update({{"intermediate_size", s.expert_inner}, {"num_local_experts", s.experts}});
  } else if (s.family == "olmoe") {
    config.update({{"intermediate_size", s.expert_inner}, {"num_experts", s.experts}, {"norm_topk_prob", false}});
  } else {
    throw_bad_input("--family \"" + s.family + "\" is not one of deepseek, deepseek_v2, deepseek_v3, glm4_moe, qwen2_moe, qwen3_moe, mixtral, olmoe");
  }
  if (s.fp8) {
    if (s.family != "deepseek_v3") throw_bad_input("--fp8 is for --family deepseek_v3 (the family that ships FP8)");
    config["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                     {"weight_block_size", {kFp8Block, kFp8Block}}};
  }
  return config;
}

// DeepSeek-V3's block FP8 of a float32 [r, c] weight: scale_inv = amax / 448 per block × block
// (partial at the edges), codes the nearest E4M3 of weight / scale_inv. (uint8 codes, float scales)
std::pair<at::Tensor, at::Tensor> quantize_fp8_blocks(const at::Tensor& weight, int64_t block) {
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t block_rows = (rows + block - 1) / block, block_cols = (cols + block - 1) / block;
  at::Tensor scale_inv = at::empty({block_rows, block_cols}, at::kFloat);
  for (int64_t i = 0; i < block_rows; ++i) {
    for (int64_t j = 0; j < block_cols; ++j) {
      double amax = weight.narrow(0, i * block, std::min(block, rows - i * block))
                        .narrow(1, j * block, std::min(block, cols - j * block)).abs().max().item<double>();
      scale_inv[i][j] = amax > 0 ? amax / 448.0 : 1.0;
    }
  }
  at::Tensor per_element = scale_inv.repeat_interleave(block, 0).narrow(0, 0, rows).repeat_interleave(block, 1).narrow(1, 0, cols);
  at::Tensor scaled = (weight / per_element).contiguous();
  at::Tensor codes = at::empty({rows, cols}, at::kByte);
  const float* in = scaled.data_ptr<float>();
  uint8_t* code = codes.data_ptr<uint8_t>();
  for (int64_t k = 0; k < rows * cols; ++k) code[k] = fp8_e4m3_code(in[k]);
  return {codes, scale_inv};
}

// "model.layers.3.": the layer a tensor belongs to, empty for embeddings, final norm and head.
std::string layer_prefix(const std::string& name) {
  const std::string layers = "model.layers.";
  if (name.compare(0, layers.size(), layers) != 0) return "";
  return name.substr(0, name.find('.', layers.size()) + 1);
}

}  // namespace

void write_synthetic_checkpoint(const std::string& dir, SyntheticShape s) {
  if (!s.tokenizer.empty()) s.vocab = int64_t(Tokenizer::load(s.tokenizer)->vocab_size());
  const nlohmann::json config = synthetic_config(s);
  const ModelConfig model_config = model_config_from_json(config, "synthetic config.json");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << config.dump(2);
  // The family's tensor table, each layer's 1-D tensors (norms) drawn first: for deepseek the
  // draw order, and so the weights of a seed, of the hand-written table this replaced.
  std::vector<TensorSpec> specs = expected_tensors(model_config, Plan());
  for (auto begin = specs.begin(); begin != specs.end();) {
    auto end = std::find_if(begin, specs.end(), [&](const TensorSpec& t) { return layer_prefix(t.name) != layer_prefix(begin->name); });
    if (!layer_prefix(begin->name).empty()) {
      std::stable_partition(begin, end, [](const TensorSpec& t) { return t.shape.size() == 1; });
    }
    begin = end;
  }
  at::manual_seed(s.seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  // Projections ~ N(0, 1/fan_in) as at initialisation, norms ~ 1: every block moves the
  // residual stream, so condensing or dropping one changes the output measurably.
  // With pretrain_init, the families' _init_weights: every Linear and the embedding
  // N(0, initializer_range = 0.02), every RMSNorm weight 1.
  for (const TensorSpec& spec : specs) {
    const bool embedding = spec.name == kEmbedTokensName;
    double scale = spec.shape.size() == 1 ? 0.1 : embedding ? 1.0 : 1.0 / std::sqrt(double(spec.shape[1]));
    at::Tensor t = at::randn(spec.shape) * (s.pretrain_init ? 0.02 : scale);
    if (spec.shape.size() == 1) t = s.pretrain_init ? at::ones(spec.shape) : t + 1.0;
    tensors.emplace_back(spec.name, s.bf16 ? t.to(at::kBFloat16) : t);
  }
  std::vector<TensorToWrite> out;
  std::vector<std::pair<std::string, at::Tensor>> scales;  // FP8: kept alive until written
  const std::string router = std::string(model_config.family->names.block) + model_config.family->names.router;
  for (auto& [name, t] : tensors) {
    const bool is_router = name.size() >= router.size() && name.compare(name.size() - router.size(), router.size(), router) == 0;
    const bool quantised = s.fp8 && t.dim() == 2 && !layer_prefix(name).empty() && !is_router;
    if (quantised) {
      auto [codes, scale_inv] = quantize_fp8_blocks(t.to(at::kFloat), kFp8Block);
      t = codes;
      scales.emplace_back(name + "_scale_inv", scale_inv);
      out.push_back({name, DType::kF8E4M3, t.sizes().vec(), t.data_ptr()});
    } else {
      out.push_back({name, s.bf16 ? DType::kBF16 : DType::kF32, t.sizes().vec(), t.data_ptr()});
    }
  }
  for (auto& [name, t] : scales) out.push_back({name, DType::kF32, t.sizes().vec(), t.data_ptr()});
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
