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
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "model/weight_names.h"

namespace cdmoe::model {

namespace {

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
  } else if (s.family == "deepseek_v3") {  // MLA (q LoRA, latent 16, rope 8), two groups of experts
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"q_lora_rank", s.hidden / 2}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", s.hidden / s.heads},
                   {"qk_rope_head_dim", 8}, {"v_head_dim", s.hidden / s.heads}, {"n_group", s.experts % 2 ? 1 : 2},
                   {"topk_group", 1}, {"routed_scaling_factor", 2.5}, {"norm_topk_prob", true}});
  } else if (s.family == "deepseek_v2") {  // V2-Lite-shaped MLA (no q LoRA), group-limited greedy routing
    config.update({{"intermediate_size", s.dense_inner}, {"moe_intermediate_size", s.expert_inner},
                   {"n_routed_experts", s.experts}, {"n_shared_experts", s.shared}, {"first_k_dense_replace", 1},
                   {"q_lora_rank", nullptr}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", s.hidden / s.heads},
                   {"qk_rope_head_dim", 8}, {"v_head_dim", s.hidden / s.heads}, {"topk_method", "group_limited_greedy"},
                   {"n_group", s.experts % 2 ? 1 : 2}, {"topk_group", 1}, {"routed_scaling_factor", 2.0}});
  } else if (s.family == "mixtral") {
    config.update({{"intermediate_size", s.expert_inner}, {"num_local_experts", s.experts}});
  } else if (s.family == "olmoe") {
    config.update({{"intermediate_size", s.expert_inner}, {"num_experts", s.experts}, {"norm_topk_prob", false}});
  } else {
    throw_bad_input("--family \"" + s.family + "\" is not one of deepseek, deepseek_v2, deepseek_v3, qwen2_moe, qwen3_moe, mixtral, olmoe");
  }
  return config;
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
