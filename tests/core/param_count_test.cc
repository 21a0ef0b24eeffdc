// Parameter counts against hand arithmetic and the published totals of the paper's two models.
#include "core/param_count.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_shape.h"
#include "model/family.h"
#include "core/plan.h"

namespace cdmoe {
namespace {

const std::string kFixtures = CDMOE_TEST_FIXTURES;

TEST(ModelShape, ReadsDeepSeekMoE16B) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/deepseek-moe-16b");
  EXPECT_EQ(s.model_type, "deepseek");
  EXPECT_EQ(s.num_layers, 28);
  EXPECT_FALSE(s.is_moe_layer(0));  // first_k_dense_replace = 1
  EXPECT_EQ(s.moe_layers().size(), 27u);
  EXPECT_EQ(s.moe_layers().front(), 1);
  EXPECT_EQ(s.num_routed_experts, 64);
  EXPECT_EQ(s.experts_per_token, 6);
  EXPECT_EQ(s.expert_intermediate_size, 1408);
  EXPECT_EQ(s.shared_intermediate_size, 2816);  // 2 shared experts of 1408
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_FALSE(s.shared_expert_gate);
}

TEST(ModelShape, ReadsQwen15MoE) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/qwen1.5-moe-a2.7b/config.json");
  EXPECT_EQ(s.model_type, "qwen2_moe");
  EXPECT_EQ(s.num_layers, 24);
  EXPECT_EQ(s.moe_layers().size(), 24u);
  EXPECT_EQ(s.num_routed_experts, 60);
  EXPECT_EQ(s.experts_per_token, 4);
  EXPECT_EQ(s.shared_intermediate_size, 5632);
  EXPECT_TRUE(s.shared_expert_gate);
  EXPECT_TRUE(s.attention_qkv_bias);
  EXPECT_FALSE(s.attention_output_bias);
}

TEST(ModelShape, LayerPatterns) {
  Json deepseek = {{"model_type", "deepseek"}, {"num_hidden_layers", 6}, {"hidden_size", 8}, {"vocab_size", 10},
                   {"num_attention_heads", 2}, {"intermediate_size", 16}, {"moe_intermediate_size", 4},
                   {"n_routed_experts", 4}, {"num_experts_per_tok", 2}, {"first_k_dense_replace", 1},
                   {"moe_layer_freq", 2}};
  EXPECT_EQ(model::model_shape_from_config(deepseek, "c").moe_layers(), (std::vector<int>{2, 4}));
  Json qwen = {{"model_type", "qwen2_moe"}, {"num_hidden_layers", 6}, {"hidden_size", 8}, {"vocab_size", 10},
               {"num_attention_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2},
               {"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}};
  EXPECT_EQ(model::model_shape_from_config(qwen, "c").moe_layers(), (std::vector<int>{1, 5}));
  qwen["model_type"] = "qwen3_moe";  // the same rule, no shared expert
  ModelShape qwen3 = model::model_shape_from_config(qwen, "c");
  EXPECT_EQ(qwen3.moe_layers(), (std::vector<int>{1, 5}));
  EXPECT_EQ(qwen3.shared_intermediate_size, 0);
  EXPECT_EQ(qwen3.head_dim, 4);
  qwen["head_dim"] = 6;  // Qwen3's explicit head size wins over hidden / heads
  EXPECT_EQ(model::model_shape_from_config(qwen, "c").head_dim, 6);
  for (const char* every_layer : {"mixtral", "olmoe"}) {
    Json all = {{"model_type", every_layer}, {"num_hidden_layers", 3}, {"hidden_size", 8}, {"vocab_size", 10},
                {"num_attention_heads", 2}, {"num_experts", 4}, {"num_local_experts", 4}, {"num_experts_per_tok", 2}};
    EXPECT_EQ(model::model_shape_from_config(all, "c").moe_layers(), (std::vector<int>{0, 1, 2})) << every_layer;
  }
}

void expect_bad_config(const Json& config, const std::string& expected) {
  try {
    model::model_shape_from_config(config, "config.json");
    ADD_FAILURE() << "accepted " << config.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(ModelShape, RejectsBadConfigs) {
  Json base = {{"model_type", "deepseek"}, {"num_hidden_layers", 2}, {"hidden_size", 8}, {"vocab_size", 10},
               {"num_attention_heads", 2}, {"intermediate_size", 16}, {"n_routed_experts", 4},
               {"num_experts_per_tok", 2}};
  Json llama = base;
  llama["model_type"] = "llama";
  expect_bad_config(llama, "model_type \"llama\" is not supported (supported: deepseek, qwen2_moe, qwen3_moe, mixtral, olmoe, deepseek_v2, deepseek_v3, glm4_moe)");
  // What the new families' transformers classes would compute differently, refused by name.
  Json qwen3 = {{"model_type", "qwen3_moe"}, {"num_hidden_layers", 2}, {"hidden_size", 8}, {"vocab_size", 10},
                {"num_attention_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2}};
  Json sliding = qwen3;
  sliding["use_sliding_window"] = true;
  expect_bad_config(sliding, "config.json: field 'use_sliding_window' turns on sliding-window attention, which is not supported");
  Json odd_head = qwen3;
  odd_head["head_dim"] = 7;
  expect_bad_config(odd_head, "config.json: the head size 7 is odd");
  Json mixtral = {{"model_type", "mixtral"}, {"num_hidden_layers", 2}, {"hidden_size", 8}, {"vocab_size", 10},
                  {"num_attention_heads", 2}, {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"sliding_window", 4096}};
  expect_bad_config(mixtral, "config.json: field 'sliding_window' turns on sliding-window attention");
  mixtral["sliding_window"] = nullptr;
  mixtral["num_experts_per_tok"] = 5;
  expect_bad_config(mixtral, "num_experts_per_tok 5 exceeds the number of routed experts 4");
  Json olmoe = {{"model_type", "olmoe"}, {"num_hidden_layers", 2}, {"hidden_size", 8}, {"vocab_size", 10},
                {"num_attention_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2}, {"clip_qkv", -1}};
  expect_bad_config(olmoe, "config.json: field 'clip_qkv' must be a positive finite number or null, got -1");
  Json v3 = {{"model_type", "deepseek_v3"}, {"num_hidden_layers", 2}, {"hidden_size", 8}, {"vocab_size", 10},
             {"num_attention_heads", 2}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2}, {"n_group", 4},
             {"topk_group", 2}, {"q_lora_rank", nullptr}, {"kv_lora_rank", 4}, {"qk_nope_head_dim", 4},
             {"qk_rope_head_dim", 2}, {"v_head_dim", 4}, {"first_k_dense_replace", 1}};
  EXPECT_EQ(model::model_shape_from_config(v3, "c").moe_layers(), (std::vector<int>{1}));
  auto bad = [](Json config, const Json& changes, const std::string& expected) {  // a null change erases the key
    for (const auto& [key, value] : changes.items()) {
      if (value.is_null()) config.erase(key);
      else config[key] = value;
    }
    expect_bad_config(config, expected);
  };
  bad(v3, {{"n_group", 3}}, "config.json: field 'n_group' 3 must divide the 8 routed experts into groups of at least 2");
  bad(v3, {{"n_group", 8}}, "field 'n_group' 8 must divide the 8 routed experts into groups of at least 2");  // no top-2
  bad(v3, {{"topk_group", 5}}, "config.json: field 'topk_group' 5 exceeds n_group 4");
  bad(v3, {{"scoring_func", "softmax"}},
      "scoring_func \"softmax\" with topk_method \"noaux_tc\" is not implemented for deepseek_v3");
  bad(v3, {{"num_key_value_heads", 1}},
      "config.json: field 'num_key_value_heads' is 1; latent attention gives every one of the 2 heads");
  bad(v3, {{"routed_scaling_factor", 0}}, "config.json: field 'routed_scaling_factor' must be in (0, 1000]");
  bad(v3, {{"qk_rope_head_dim", 3}}, "config.json: field 'qk_rope_head_dim' must be even");
  // DeepSeek-V2: the same latent attention, a softmax router, greedy or group-limited.
  Json v2 = v3;
  v2["model_type"] = "deepseek_v2";
  v2.erase("n_group");
  v2.erase("topk_group");
  const ModelShape greedy = model::model_shape_from_config(v2, "c");
  EXPECT_EQ(greedy.router, RouterKind::kSoftmax);
  EXPECT_EQ(greedy.moe_layers(), (std::vector<int>{1}));
  EXPECT_EQ(greedy.shared_intermediate_size, 2 * greedy.expert_intermediate_size);  // DeepseekV2Config: 2 shared
  Json v2_groups = v2;
  v2_groups.update({{"topk_method", "group_limited_greedy"}, {"n_group", 8}, {"topk_group", 3}, {"n_shared_experts", nullptr}});
  const ModelShape grouped = model::model_shape_from_config(v2_groups, "c");
  EXPECT_EQ(grouped.router, RouterKind::kSoftmaxGroups);
  EXPECT_EQ(grouped.n_group, 8);  // groups of one are fine: a group's score is its largest probability
  EXPECT_EQ(grouped.shared_intermediate_size, 0);
  bad(v2_groups, {{"n_group", nullptr}}, "config.json: missing required field 'n_group'");
  bad(v2_groups, {{"n_group", 3}}, "config.json: field 'n_group' 3 must divide the 8 routed experts into groups of at least 1");
  bad(v2, {{"topk_method", "noaux_tc"}},
      "scoring_func \"softmax\" with topk_method \"noaux_tc\" is not implemented for deepseek_v2");
  bad(v2, {{"norm_topk_prob", true}}, "config.json: field 'norm_topk_prob' true is not implemented for deepseek_v2");
  bad(v2, {{"moe_layer_freq", 2}}, "config.json: field 'moe_layer_freq' other than 1 is not supported for deepseek_v2");
  bad(v2, {{"mlp_bias", true}}, "config.json: field 'mlp_bias' true");
  bad(v2, {{"num_experts_per_tok", nullptr}}, "config.json: missing required field 'num_experts_per_tok'");
  bad(v2, {{"num_key_value_heads", 1}}, "field 'num_key_value_heads' is 1; latent attention");
  // GLM-4.5: standard attention with partial rotary, V3's router.
  Json glm = {{"model_type", "glm4_moe"}, {"num_hidden_layers", 3}, {"hidden_size", 8}, {"vocab_size", 10},
              {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"head_dim", 8}, {"n_routed_experts", 8},
              {"num_experts_per_tok", 2}, {"n_group", 2}, {"topk_group", 1}};
  const ModelShape glm_shape = model::model_shape_from_config(glm, "c");
  EXPECT_EQ(glm_shape.rope_dim(), 4);  // Glm4MoeConfig's partial_rotary_factor 0.5
  EXPECT_EQ(glm_shape.moe_layers(), (std::vector<int>{1, 2}));  // first_k_dense_replace 1
  EXPECT_EQ(glm_shape.router, RouterKind::kSigmoidGroups);
  Json glm_v5 = glm;
  glm_v5["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e4}, {"partial_rotary_factor", 1.0}};
  EXPECT_EQ(model::model_shape_from_config(glm_v5, "c").rope_dim(), 8);
  bad(glm, {{"head_dim", nullptr}}, "config.json: field 'head_dim' is required for glm4_moe");
  for (double factor : {0.0, 1.5, 0.375}) {  // 0.375 x 8 = 3 dims: RoPE rotates pairs
    bad(glm, {{"partial_rotary_factor", factor}}, "config.json: field 'partial_rotary_factor' ");
  }
  bad(glm, {{"n_group", 8}}, "field 'n_group' 8 must divide the 8 routed experts into groups of at least 2");
  Json missing = base;
  missing.erase("hidden_size");
  expect_bad_config(missing, "config.json: missing required field 'hidden_size'");
  Json wrong_type = base;
  wrong_type["num_hidden_layers"] = "2";
  expect_bad_config(wrong_type, "field 'num_hidden_layers' must be an integer");
  Json too_many = base;
  too_many["num_experts_per_tok"] = 5;
  expect_bad_config(too_many, "num_experts_per_tok 5 exceeds the number of routed experts 4");
  Json heads = base;
  heads["num_attention_heads"] = 3;
  expect_bad_config(heads, "hidden_size 8 is not divisible by num_attention_heads 3");
}

// Hand count for DeepSeekMoE-16B: D = 2048, V = 102400, 28 layers (layer 0 dense), 64 experts of
// 1408, shared 2 × 1408, no biases, untied head.
TEST(ParamCount, DeepSeekMoE16BByHand) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/deepseek-moe-16b");
  const int64_t d = 2048, vocab = 102400;
  const int64_t attention = 4 * d * d, norms = 2 * d;
  const int64_t dense_mlp = 3 * d * 10944;
  const int64_t expert = 3 * d * 1408, shared = 3 * d * 2816, router = 64 * d;
  const int64_t moe = router + 64 * expert + shared;
  const int64_t expected = 2 * vocab * d + d + 28 * (attention + norms) + dense_mlp + 27 * moe;
  ParameterCount count = count_parameters(s, Plan());
  EXPECT_EQ(count.total(), expected);
  EXPECT_EQ(expected, 16375728128);  // the published 16.38B
  EXPECT_EQ(count.per_layer[0], attention + norms + dense_mlp);
  EXPECT_EQ(count.per_layer[5], attention + norms + moe);

  // The paper's CD-MoE-SR point: 9 layers condensed to shared + 6 experts keep ~72.5% of memory.
  Plan sr;
  for (int layer = 1; layer <= 9; ++layer) sr.set_layer(layer, LayerPlan{LayerOp::kCondense, {0, 1, 2, 3, 4, 5}, {}, {}});
  ParameterCount condensed = count_parameters(s, sr);
  EXPECT_EQ(condensed.per_layer[3], attention + norms + 3 * d * (2816 + 6 * 1408));
  EXPECT_EQ(condensed.total(), expected - 9 * (moe - 3 * d * (2816 + 6 * 1408)));
  EXPECT_NEAR(parameter_ratio(s, sr), 0.725, 0.002);

  // Dropping the dense layer 0 removes its MLP and its post-attention norm.
  Plan drop_dense = Plan::parse(R"({"layers":{"0":{"op":"drop"}}})", "p");
  EXPECT_EQ(count_parameters(s, drop_dense).per_layer[0], attention + d);
  // BlockDrop removes everything of the block: attention, both norms, the MLP or MoE.
  Plan blocks = Plan::parse(R"({"layers":{"0":{"op":"drop_block"},"7":{"op":"drop_block"}}})", "p");
  ParameterCount without = count_parameters(s, blocks);
  EXPECT_EQ(without.per_layer[0], 0);
  EXPECT_EQ(without.per_layer[7], 0);
  EXPECT_EQ(without.total(), expected - (attention + norms + dense_mlp) - (attention + norms + moe));
}

// Hand count for Qwen1.5-MoE-A2.7B: D = 2048, V = 151936, 24 MoE layers of 60 experts of 1408,
// one shared expert of 5632 behind a [1, D] gate, q/k/v biases.
TEST(ParamCount, Qwen15MoEByHand) {
  ModelShape s = model::read_model_shape(kFixtures + "/configs/qwen1.5-moe-a2.7b");
  const int64_t d = 2048, vocab = 151936;
  const int64_t attention = 4 * d * d + 3 * d, norms = 2 * d;
  const int64_t moe = 60 * d + 60 * 3 * d * 1408 + 3 * d * 5632 + d;
  const int64_t expected = 2 * vocab * d + d + 24 * (attention + norms + moe);
  EXPECT_EQ(count_parameters(s, Plan()).total(), expected);
  EXPECT_EQ(expected, 14315784192);  // the published 14.3B

  Plan plan = Plan::parse(R"({"layers":{
      "0":{"op":"condense","experts":[]},
      "1":{"op":"drop"},
      "2":{"op":"prune","experts":[0,1,2,3,4,5,6,7]},
      "3":{"op":"condense","experts":[7,8,9,10],"shared_weight":0.5}}})", "plan");
  plan.validate(s, "plan");
  ParameterCount count = count_parameters(s, plan);
  EXPECT_EQ(count.per_layer[0], attention + norms + 3 * d * 5632);             // shared only, gate folded
  EXPECT_EQ(count.per_layer[1], attention + d);                                 // MLP and its norm gone
  EXPECT_EQ(count.per_layer[2], attention + norms + 8 * d + 8 * 3 * d * 1408 + 3 * d * 5632 + d);
  EXPECT_EQ(count.per_layer[3], attention + norms + 3 * d * (5632 + 4 * 1408));
  EXPECT_EQ(count.per_layer[4], attention + norms + moe);
}

TEST(ParamCount, TiedEmbeddingsHaveNoHead) {
  Json config = {{"model_type", "qwen2_moe"}, {"num_hidden_layers", 1}, {"hidden_size", 8}, {"vocab_size", 10},
                 {"num_attention_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2},
                 {"moe_intermediate_size", 4}, {"shared_expert_intermediate_size", 6},
                 {"tie_word_embeddings", true}};
  ModelShape s = model::model_shape_from_config(config, "c");
  ParameterCount count = count_parameters(s, Plan());
  EXPECT_EQ(count.lm_head, 0);
  EXPECT_EQ(count.total(), 10 * 8 + 8 + (4 * 64 + 3 * 8) + 16 + (4 * 8 + 4 * 3 * 8 * 4 + 3 * 8 * 6 + 8));
}

TEST(ParamCount, BytesPerElement) {
  EXPECT_EQ(bytes_per_element("float32"), 4);
  EXPECT_EQ(bytes_per_element("BF16"), 2);
  EXPECT_EQ(bytes_per_element("float16"), 2);
  EXPECT_THROW(bytes_per_element("int4"), Error);
}

}  // namespace
}  // namespace cdmoe
