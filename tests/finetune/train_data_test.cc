// Fine-tuning data: packing, SFT targets, the seeded epoch order, and bad input naming the file.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "finetune/train_data.h"
#include "tests/test_util.h"

namespace cdmoe::finetune {
namespace {

using testing::TempDir;
using testing::write_file;

const std::string kLlama2 = std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers/llama2";

TEST(TrainData, PacksDocumentsIntoBlocksKeepingTheShortLastOne) {
  auto tokenizer = model::Tokenizer::load(kLlama2);
  TempDir dir;
  std::string docs = "The cat sat on the mat and looked at the bird.\nA second document, somewhat longer than the first one is.\n";
  write_file(dir.file("d.txt"), docs);
  std::vector<int64_t> stream;
  for (const char* text : {"The cat sat on the mat and looked at the bird.", "A second document, somewhat longer than the first one is."}) {
    auto ids = tokenizer->encode(text, true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  TokenRows rows = read_lm_rows(dir.file("d.txt"), *tokenizer, 8);
  ASSERT_EQ(rows.rows.size(), (stream.size() + 7) / 8);
  int64_t targets = 0;
  for (size_t r = 0; r < rows.rows.size(); ++r) {
    const TokenRow& row = rows.rows[r];
    EXPECT_EQ(row.ids, std::vector<int64_t>(stream.begin() + long(8 * r), stream.begin() + long(std::min(stream.size(), 8 * r + 8))));
    EXPECT_EQ(row.target[0], 0);
    for (size_t t = 1; t < row.target.size(); ++t) EXPECT_EQ(row.target[t], 1);
    targets += int64_t(row.ids.size()) - 1;
  }
  EXPECT_EQ(rows.target_tokens, targets);
  EXPECT_LT(rows.rows.back().ids.size(), 8u);  // the last block is kept, shorter
}

TEST(TrainData, SftTrainsOnTheResponseOnly) {
  auto tokenizer = model::Tokenizer::load(kLlama2);
  TempDir dir;
  write_file(dir.file("s.jsonl"), "{\"prompt\": \"Question: two plus two?\", \"response\": \" Four.\"}\n");
  TokenRows rows = read_sft_rows(dir.file("s.jsonl"), *tokenizer, 64);
  ASSERT_EQ(rows.rows.size(), 1u);
  const TokenRow& row = rows.rows[0];
  size_t prompt = tokenizer->special_prefix().size() + tokenizer->encode("Question: two plus two?").size();
  size_t response = tokenizer->encode(" Four.").size() + tokenizer->special_suffix().size();
  ASSERT_EQ(row.ids.size(), prompt + response);
  for (size_t t = 0; t < row.ids.size(); ++t) EXPECT_EQ(row.target[t], t >= prompt ? 1 : 0) << t;
  EXPECT_EQ(rows.target_tokens, int64_t(response));
}

TEST(TrainData, BadInputNamesTheFileAndLine) {
  auto tokenizer = model::Tokenizer::load(kLlama2);
  TempDir dir;
  auto message = [&](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  write_file(dir.file("short.txt"), "Hi.\n");
  EXPECT_NE(message([&] { read_lm_rows(dir.file("short.txt"), *tokenizer, 256); }).find("fewer than one block"), std::string::npos);
  write_file(dir.file("empty.txt"), "");
  EXPECT_NE(message([&] { read_lm_rows(dir.file("empty.txt"), *tokenizer, 8); }).find("empty.txt: is empty"), std::string::npos);
  EXPECT_NE(message([&] { read_lm_rows(dir.file("missing.txt"), *tokenizer, 8); }).find("missing.txt"), std::string::npos);
  write_file(dir.file("s.jsonl"), "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a long prompt that fills it\", \"response\": \"b\"}\n");
  EXPECT_NE(message([&] { read_sft_rows(dir.file("s.jsonl"), *tokenizer, 4); }).find("s.jsonl:2: the prompt fills"), std::string::npos);
  write_file(dir.file("t.jsonl"), "{\"prompt\": \"a\"}\n");
  EXPECT_NE(message([&] { read_sft_rows(dir.file("t.jsonl"), *tokenizer, 16); }).find("t.jsonl:1"), std::string::npos);
}

TEST(TrainData, EpochOrderIsASeededPermutationPerEpoch) {
  std::vector<int64_t> a = epoch_order(50, 7, 0), b = epoch_order(50, 7, 0), c = epoch_order(50, 7, 1), d = epoch_order(50, 8, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 50u);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 49);
}

}  // namespace
}  // namespace cdmoe::finetune
