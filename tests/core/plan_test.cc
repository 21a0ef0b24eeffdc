#include "core/plan.h"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_shape.h"
#include "model/family.h"

namespace cdmoe {
namespace {

// The example of ARCHITECTURE.md §7 with experts out of order.
constexpr const char* kDesignExample = R"({"layers": {
    "3": {"op": "condense", "experts": [5, 17, 2], "weights": [0.12, 0.09, 0.08]},
    "5": {"op": "drop"},
    "7": {"op": "prune", "experts": [9, 0, 1, 4]}}})";

// A shape for validation: 8 layers, layer 0 dense, 16 experts.
ModelShape small_shape() {
  Json config = {{"model_type", "deepseek"}, {"num_hidden_layers", 8}, {"hidden_size", 64},
                 {"vocab_size", 100},        {"num_attention_heads", 4}, {"intermediate_size", 128},
                 {"moe_intermediate_size", 32}, {"n_routed_experts", 16}, {"n_shared_experts", 2},
                 {"num_experts_per_tok", 4}, {"first_k_dense_replace", 1}};
  return model::model_shape_from_config(config, "test config");
}

std::string bad_input_message(const std::string& text, bool validate = false) {
  try {
    Plan plan = Plan::parse(text, "plan.json");
    if (validate) plan.validate(small_shape(), "plan.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    return message;
  }
  ADD_FAILURE() << "accepted: " << text;
  return "";
}

TEST(Plan, CanonicalFormSortsExpertsWithTheirWeights) {
  Plan plan = Plan::parse(kDesignExample, "plan.json");
  EXPECT_EQ(plan.canonical(),
            R"({"layers":{"3":{"experts":[2,5,17],"op":"condense","weights":[0.08,0.12,0.09]},)"
            R"("5":{"op":"drop"},"7":{"experts":[0,1,4,9],"op":"prune"}}})");
  // Golden value from Python's hashlib over the canonical text above.
  EXPECT_EQ(plan.hash(), "bc85f889e908d82ef3b59ebaf389d9ddc651e67345d1151c5688f100d50d3557");
  EXPECT_EQ(Plan().hash(), "b83387f345d121e12cdcc4cfc7d0b5d64f2aba7d02005c423fc7efe821c8af57");
}

TEST(Plan, HashIgnoresOrderAndWhitespaceButNotContent) {
  Plan a = Plan::parse(R"({"layers":{"2":{"op":"condense","experts":[3,1],"weights":[0.5,0.25]}}})", "a");
  Plan b = Plan::parse(R"({ "layers" : { "2" : { "weights":[0.25, 0.5], "experts":[1, 3], "op":"condense" } } })", "b");
  Plan c = Plan::parse(R"({"layers":{"2":{"op":"condense","experts":[3,1],"weights":[0.25,0.5]}}})", "c");
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a, b);
  EXPECT_NE(a.hash(), c.hash());
  EXPECT_NE(a, c);
}

TEST(Plan, CanonicalTextEqualsTheJsonLibrarysRendering) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 300; ++trial) {
    Plan plan;
    int layers = int(rng() % 14);
    for (int i = 0; i < layers; ++i) {
      LayerPlan lp;
      lp.op = LayerOp(rng() % 3);
      if (lp.op != LayerOp::kDrop) {
        int count = int(rng() % 5) + (lp.op == LayerOp::kPrune);
        for (int e = 0; e < count; ++e) lp.experts.push_back(int(rng() % 64));
        std::sort(lp.experts.begin(), lp.experts.end());
        lp.experts.erase(std::unique(lp.experts.begin(), lp.experts.end()), lp.experts.end());
      }
      if (lp.op == LayerOp::kCondense && rng() % 2) {
        for (size_t e = 0; e < lp.experts.size(); ++e) lp.weights.push_back(double(rng() % 100000) / 7919.0);
      }
      if (lp.op == LayerOp::kCondense && rng() % 3 == 0) lp.shared_weight = double(rng() % 1000) / 3.0;
      plan.set_layer(int(rng() % 30), lp);
    }
    ASSERT_EQ(plan.canonical(), plan.to_json().dump());
  }
}

TEST(Plan, RoundTripsThroughJson) {
  Plan plan = Plan::parse(R"({"layers":{"4":{"op":"condense","experts":[],"shared_weight":0.75}}})", "p");
  Plan again = Plan::from_json(plan.to_json(), "again");
  EXPECT_EQ(plan, again);
  EXPECT_EQ(plan.canonical(), again.canonical());
  ASSERT_TRUE(again.layers().at(4).shared_weight.has_value());
  EXPECT_DOUBLE_EQ(*again.layers().at(4).shared_weight, 0.75);
  EXPECT_TRUE(again.layers().at(4).experts.empty());
}

TEST(Plan, DropBlockAppliesToAnyLayerAndHasNoExperts) {
  Plan plan = Plan::parse(R"({"layers":{"0":{"op":"drop_block"},"2":{"op":"drop_block"}}})", "p");
  EXPECT_NO_THROW(plan.validate(small_shape(), "p")) << "a dense layer's block too";
  EXPECT_EQ(plan.layers().at(0).op, LayerOp::kDropBlock);
  EXPECT_EQ(plan.canonical(), R"({"layers":{"0":{"op":"drop_block"},"2":{"op":"drop_block"}}})");
  EXPECT_EQ(plan.canonical(), plan.to_json().dump());
  EXPECT_EQ(Plan::from_json(plan.to_json(), "again"), plan);
  EXPECT_NE(plan.hash(), Plan::parse(R"({"layers":{"0":{"op":"drop"},"2":{"op":"drop"}}})", "p").hash());
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"drop_block","experts":[1]}}})").find("unknown field 'experts'"),
            std::string::npos);
}

TEST(Plan, EmptyAndOriginal) {
  EXPECT_TRUE(Plan::parse("{}", "p").is_original());
  EXPECT_TRUE(Plan::parse(R"({"layers":{}})", "p").is_original());
  EXPECT_EQ(Plan::parse("{}", "p").hash(), Plan().hash());
}

TEST(Plan, ValidatesAgainstShape) {
  Plan ok = Plan::parse(R"({"layers":{"0":{"op":"drop"},"7":{"op":"condense","experts":[15]}}})", "p");
  EXPECT_NO_THROW(ok.validate(small_shape(), "p"));
}

TEST(Plan, RejectsMalformedJson) {
  EXPECT_NE(bad_input_message(R"({"layers": {"3": )").find("plan.json: not valid JSON"), std::string::npos);
  EXPECT_NE(bad_input_message("[1,2]").find("must be a JSON object"), std::string::npos);
}

TEST(Plan, RejectsBadStructureNamingTheKey) {
  EXPECT_NE(bad_input_message(R"({"layerz":{}})").find("unknown field 'layerz'"), std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"03":{"op":"drop"}}})").find("layer key \"03\""), std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"-1":{"op":"drop"}}})").find("layer key \"-1\""), std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"x":{"op":"drop"}}})").find("layer key \"x\""), std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"merge"}}})").find("layer \"3\": op \"merge\""),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"experts":[1]}}})").find("layer \"3\": missing required field 'op'"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"drop","experts":[1]}}})").find("unknown field 'experts'"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"condense","experts":[2,5,2]}}})")
                .find("layer \"3\": expert 2 is listed twice"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"condense","experts":[2,5],"weights":[0.1]}}})")
                .find("layer \"3\": 'weights' has 1 entries for 2 experts"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"condense","experts":[2],"weights":["a"]}}})")
                .find("weights[0] must be a number"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"condense","experts":[-1]}}})").find("not an expert index"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"3":{"op":"prune","experts":[]}}})").find("at least one expert"),
            std::string::npos);
}

TEST(Plan, RejectsWhatTheModelDoesNotHave) {
  EXPECT_NE(bad_input_message(R"({"layers":{"8":{"op":"drop"}}})", true)
                .find("layer \"8\" is out of range: the model has 8 decoder layers"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"0":{"op":"condense","experts":[1]}}})", true)
                .find("layer \"0\" is a dense layer"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"0":{"op":"prune","experts":[1]}}})", true)
                .find("layer \"0\" is a dense layer"),
            std::string::npos);
  EXPECT_NE(bad_input_message(R"({"layers":{"2":{"op":"condense","experts":[16]}}})", true)
                .find("layer \"2\": expert 16 is out of range: the layer has 16 routed experts"),
            std::string::npos);
}

}  // namespace
}  // namespace cdmoe
