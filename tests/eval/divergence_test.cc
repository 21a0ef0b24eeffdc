// Divergences and NLL against float64 textbook values from tests/fixtures/eval/
// make_divergence_golden.py, for several vocabulary chunk sizes; and their basic properties
// on a real model: 0 for identical models, > 0 with a layer dropped, symmetric.
#include "eval/divergence.h"

#include <functional>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "model/moe_model.h"
#include "model/safetensors.h"
#include "tests/test_device.h"

namespace cdmoe::eval {
namespace {

const std::string kFixtures = CDMOE_TEST_FIXTURES;

struct Inputs {
  std::map<std::string, at::Tensor> tensors;
  Json expected;
};

Inputs load() {
  Inputs in;
  model::SafetensorsFile file(kFixtures + "/eval/divergence_inputs.safetensors");
  for (const auto& [name, info] : file.header().tensors) {
    in.tensors[name] = at::from_blob(const_cast<uint8_t*>(file.tensor_data(info)), info.shape, at::kFloat).clone();
  }
  in.expected = read_json_file(kFixtures + "/eval/divergence_expected.json");
  return in;
}

TEST(Divergence, MatchesTheReferenceForEveryChunkSize) {
  Inputs in = load();
  at::Tensor &x_ref = in.tensors["x_ref"], &x_cand = in.tensors["x_cand"], &w = in.tensors["w"];
  at::Tensor valid = in.tensors["valid"].to(at::kBool);
  auto near = [](double got, double want) { return std::abs(got - want) <= 1e-6 * std::max(1.0, std::abs(want)); };
  for (int64_t chunk : {1, 7, 50, 64}) {
    EXPECT_TRUE(near(js_logits(x_ref, x_cand, w, valid, chunk), in.expected["js_logits"])) << chunk;
    EXPECT_TRUE(near(kl_logits(x_ref, x_cand, w, valid, chunk), in.expected["kl_logits"])) << chunk;
    NllSum nll = next_token_nll(in.tensors["x_seq"], w, in.tensors["ids"].to(at::kLong), in.tensors["mask"], chunk);
    EXPECT_TRUE(near(nll.nll, in.expected["nll_sum"])) << chunk << ": " << nll.nll;
    EXPECT_EQ(nll.tokens, in.expected["nll_tokens"].get<int64_t>());
  }
  // Float64 inputs take the same fused loops' other instantiation.
  EXPECT_TRUE(near(js_logits(x_ref.to(at::kDouble), x_cand.to(at::kDouble), w.to(at::kDouble), valid, 7), in.expected["js_logits"]));
  EXPECT_TRUE(near(kl_logits(x_ref.to(at::kDouble), x_cand.to(at::kDouble), w.to(at::kDouble), valid, 7), in.expected["kl_logits"]));
  EXPECT_TRUE(near(js_hidden(x_ref, x_cand, valid), in.expected["js_hidden"]));
  EXPECT_TRUE(near(mse(x_ref, x_cand, valid), in.expected["mse"]));
  EXPECT_TRUE(near(cosine_distance(x_ref, x_cand, valid), in.expected["cosine"]));
  // Padding is excluded: the same rows without the mask give another figure.
  EXPECT_FALSE(near(js_logits(x_ref, x_cand, w, at::Tensor(), 8), in.expected["js_logits"]));
}

// A prepared reference (what a search reuses across candidates) gives exactly the one-shot
// value, whether its log-probabilities are kept or recomputed.
TEST(Divergence, APreparedReferenceGivesTheSameValue) {
  Inputs in = load();
  at::Tensor &x_ref = in.tensors["x_ref"], &x_cand = in.tensors["x_cand"], &w = in.tensors["w"];
  at::Tensor valid = in.tensors["valid"].to(at::kBool);
  at::Tensor rows = valid.nonzero().squeeze(1);
  for (int64_t chunk : {7, 64}) {
    for (int64_t keep : {int64_t(0), int64_t(1) << 30}) {
      VocabularyReference reference(x_ref.index_select(0, rows), w, chunk, keep);
      EXPECT_EQ(reference.kept_bytes() > 0, keep > 0);
      at::Tensor q = x_cand.index_select(0, rows);
      EXPECT_EQ(js_logits(reference, q), js_logits(x_ref, x_cand, w, valid, chunk)) << chunk << " " << keep;
      EXPECT_EQ(kl_logits(reference, q), kl_logits(x_ref, x_cand, w, valid, chunk)) << chunk << " " << keep;
      EXPECT_EQ(js_logits(reference, q), js_logits(reference, q)) << "reusable";
    }
  }
}

// The tensor-operation kernel (what a model on a CUDA device takes) run here on the CPU: the
// same golden values for every chunk size, and the host loops' values up to rounding, for a
// one-shot and a prepared reference alike.
TEST(Divergence, TheTensorOpsKernelMatchesTheReferenceAndTheHostLoops) {
  Inputs in = load();
  at::Tensor &x_ref = in.tensors["x_ref"], &x_cand = in.tensors["x_cand"], &w = in.tensors["w"];
  at::Tensor valid = in.tensors["valid"].to(at::kBool), ids = in.tensors["ids"].to(at::kLong);
  auto near = [](double got, double want, double tolerance) {
    return std::abs(got - want) <= tolerance * std::max(1.0, std::abs(want));
  };
  const auto ops = VocabularyKernel::kTensorOps, loops = VocabularyKernel::kHostLoops;
  for (int64_t chunk : {1, 7, 50, 64}) {
    double js = js_logits(x_ref, x_cand, w, valid, chunk, ops), kl = kl_logits(x_ref, x_cand, w, valid, chunk, ops);
    EXPECT_TRUE(near(js, in.expected["js_logits"], 1e-6)) << chunk << ": " << js;
    EXPECT_TRUE(near(kl, in.expected["kl_logits"], 1e-6)) << chunk << ": " << kl;
    EXPECT_TRUE(near(js, js_logits(x_ref, x_cand, w, valid, chunk, loops), 1e-12)) << chunk;
    EXPECT_TRUE(near(kl, kl_logits(x_ref, x_cand, w, valid, chunk, loops), 1e-12)) << chunk;
    NllSum nll = next_token_nll(in.tensors["x_seq"], w, ids, in.tensors["mask"], chunk, ops);
    EXPECT_TRUE(near(nll.nll, in.expected["nll_sum"], 1e-6)) << chunk << ": " << nll.nll;
    EXPECT_TRUE(near(nll.nll, next_token_nll(in.tensors["x_seq"], w, ids, in.tensors["mask"], chunk, loops).nll, 1e-12));
    EXPECT_EQ(nll.tokens, in.expected["nll_tokens"].get<int64_t>());
  }
  at::Tensor rows = valid.nonzero().squeeze(1);
  for (int64_t keep : {int64_t(0), int64_t(1) << 30}) {
    VocabularyReference reference(x_ref.index_select(0, rows), w, 7, keep, ops);
    EXPECT_EQ(reference.kernel(), ops);
    at::Tensor q = x_cand.index_select(0, rows);
    EXPECT_EQ(js_logits(reference, q), js_logits(x_ref, x_cand, w, valid, 7, ops)) << keep;
    EXPECT_EQ(kl_logits(reference, q), kl_logits(x_ref, x_cand, w, valid, 7, ops)) << keep;
  }
  // kAuto picks the host loops for CPU tensors.
  EXPECT_EQ(VocabularyReference(x_ref.index_select(0, rows), w, 7, 0).kernel(), loops);
}

// The per-sequence mean (--divergence-mean sequence, the reference's average) equals the mean
// over sequences of each sequence's own token mean, computed one sequence at a time; sequences
// without a token do not count. For every divergence and both vocabulary kernels.
TEST(Divergence, SequenceMeanIsTheMeanOfEachSequencesMean) {
  Inputs in = load();
  ASSERT_GE(in.tensors["x_ref"].size(0), 12);
  at::Tensor x_ref = in.tensors["x_ref"].narrow(0, 0, 12), x_cand = in.tensors["x_cand"].narrow(0, 0, 12), w = in.tensors["w"];
  const std::vector<int64_t> lengths = {3, 1, 0, 2};  // a [4, 3] batch, right-padded
  at::Tensor mask = at::zeros({4, 3}, at::kLong);
  for (int64_t b = 0; b < 4; ++b) mask[b].narrow(0, 0, lengths[size_t(b)]).fill_(1);
  at::Tensor valid = mask.flatten().to(at::kBool);
  at::Tensor weights = divergence_row_weights(mask, DivergenceMean::kSequence);
  ASSERT_EQ(weights.numel(), 6);
  EXPECT_NEAR(weights.sum().item<double>(), 1.0, 1e-15);
  EXPECT_FALSE(divergence_row_weights(mask, DivergenceMean::kToken).defined()) << "token: the plain mean";
  auto per_sequence = [&](const std::function<double(const at::Tensor& valid_of_b)>& divergence) {
    double sum = 0;
    int sequences = 0;
    for (int64_t b = 0; b < 4; ++b) {
      if (lengths[size_t(b)] == 0) continue;
      at::Tensor only_b = at::zeros({4, 3}, at::kBool);
      only_b[b].copy_(mask[b].to(at::kBool));
      sum += divergence(only_b.flatten());
      ++sequences;
    }
    return sum / sequences;
  };
  // Each row's float32 logits come from a GEMM whose blocking (and so its rounding) may depend on
  // how many rows it multiplies (OpenBLAS picks kernels per CPU and shape): the one-sequence
  // computations agree with the batch to float32's precision, not to the last bit.
  auto near_logits = [](double got, double want) { return std::abs(got - want) <= 1e-6 * std::max(1e-12, std::abs(want)); };
  auto near = [](double got, double want) { return std::abs(got - want) <= 1e-12 * std::max(1e-12, std::abs(want)); };
  for (auto kernel : {VocabularyKernel::kHostLoops, VocabularyKernel::kTensorOps}) {
    double js = js_logits(x_ref, x_cand, w, valid, 7, kernel, weights);
    EXPECT_TRUE(near_logits(js, per_sequence([&](const at::Tensor& v) { return js_logits(x_ref, x_cand, w, v, 7, kernel); }))) << js;
    double kl = kl_logits(x_ref, x_cand, w, valid, 7, kernel, weights);
    EXPECT_TRUE(near_logits(kl, per_sequence([&](const at::Tensor& v) { return kl_logits(x_ref, x_cand, w, v, 7, kernel); }))) << kl;
    EXPECT_GT(std::abs(js - js_logits(x_ref, x_cand, w, valid, 7, kernel)), 1e-9) << "the weighting changes the figure";
    at::Tensor rows = valid.nonzero().squeeze(1);
    VocabularyReference reference(x_ref.index_select(0, rows), w, 7, int64_t(1) << 30, kernel);
    EXPECT_EQ(js_logits(reference, x_cand.index_select(0, rows), weights), js);
  }
  for (DivergenceKind kind : {DivergenceKind::kJsHidden, DivergenceKind::kMse, DivergenceKind::kCosine}) {
    auto hidden = [&](const at::Tensor& v, const at::Tensor& row_weights) {
      return hidden_divergence(kind, prepare_hidden_reference(kind, x_ref, v), x_cand, v, row_weights);
    };
    double weighted = hidden(valid, weights);
    EXPECT_TRUE(near(weighted, per_sequence([&](const at::Tensor& v) { return hidden(v, at::Tensor()); }))) << int(kind);
    EXPECT_GT(std::abs(weighted - hidden(valid, at::Tensor())), 1e-12) << int(kind);
  }
}

TEST(Divergence, PropertiesOnARealModel) {
  auto model = model::MoeModel::load(kFixtures + "/model/deepseek_gqa", testing::test_device());
  at::Tensor ids = at::arange(14, at::kLong).view({2, 7}) * 13 % 96;
  auto final_hidden = [&](const Plan& plan) {
    at::Tensor h = model->run_layers(model->embed(ids), at::Tensor(), 0, 3, plan);
    return h.reshape({-1, h.size(2)});
  };
  // Properties only: the un-normed final states stand in for the final-norm outputs.
  at::Tensor w = model->materialise(Plan())[2].second;  // lm_head.weight (untied model)
  ASSERT_EQ(model->materialise(Plan())[2].first, "lm_head.weight");
  Plan dropped = Plan::parse(R"({"layers":{"2":{"op":"drop"}}})", "p");
  at::Tensor a = final_hidden(Plan()), b = final_hidden(dropped);
  EXPECT_NEAR(js_logits(a, a, w, at::Tensor()), 0.0, 1e-12);
  EXPECT_NEAR(js_hidden(a, a, at::Tensor()), 0.0, 1e-12);
  double ab = js_logits(a, b, w, at::Tensor(), 16), ba = js_logits(b, a, w, at::Tensor(), 16);
  EXPECT_GT(ab, 1e-4);
  EXPECT_NEAR(ab, ba, 1e-12);
  EXPECT_LE(ab, std::log(2.0));  // JS is bounded by ln 2
  EXPECT_GT(kl_logits(a, b, w, at::Tensor()), 0);
  EXPECT_GT(js_hidden(a, b, at::Tensor()), 0);
}

}  // namespace
}  // namespace cdmoe::eval
