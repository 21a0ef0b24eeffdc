// The BPE trainer (model/bpe_trainer.h) on a small text, and the demo model's tokenizer it made
// against Hugging Face's own tokenizers library on the 1,200 varied lines (expected_demo.jsonl,
// made by tests/fixtures/tokenizer/encode_golden.js from data/demo/model/tokenizer.json).
#include "model/bpe_trainer.h"

#include <algorithm>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

using testing::TempDir;
using testing::write_file;

std::vector<std::string> corpus() {
  std::vector<std::string> documents;
  for (int i = 0; i < 30; ++i) {
    documents.push_back("And the earth was without form, and void; and darkness was upon the face of the deep " +
                        std::to_string(i) + ".");
    documents.push_back("In the beginning God created the heaven and the earth.");
  }
  return documents;
}

Json train(const TempDir& dir, int64_t vocab_size, BpeTrainingStats* stats = nullptr) {
  BpeTrainingOptions options;
  options.vocab_size = vocab_size;
  write_file(dir.file("skeleton.json"), byte_level_skeleton(options).dump());
  return train_byte_level_bpe(dir.file("skeleton.json"), corpus(), options, stats);
}

TEST(BpeTrainer, MergesTheMostFrequentPairsIntoADenseVocabulary) {
  TempDir dir;
  BpeTrainingStats stats;
  Json tokenizer = train(dir, 300, &stats);
  const Json& vocab = tokenizer["model"]["vocab"];
  EXPECT_EQ(vocab.size(), 300u);
  std::vector<bool> seen(300, false);
  for (const auto& [text, id] : vocab.items()) seen.at(size_t(id.get<int64_t>())) = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 300);  // ids 0..299, no hole
  EXPECT_EQ(vocab["<|endoftext|>"], 256);
  EXPECT_EQ(stats.merges, int64_t(tokenizer["model"]["merges"].size()));
  EXPECT_EQ(stats.merges, 300 - 257);
  // The first merge is the most frequent adjacent pair of byte symbols, counted here over the
  // words the byte-level pre-tokenizer makes (ties: the smaller pair).
  auto bytes = Tokenizer::load(dir.file("skeleton.json"));
  std::map<std::pair<std::string, std::string>, int> pairs;
  for (const std::string& document : corpus()) {
    for (const std::string& word : bytes->words(document)) {
      std::vector<std::string> symbols;
      for (size_t at = 0; at < word.size();) {
        size_t n = (static_cast<unsigned char>(word[at]) & 0x80) ? 2 : 1;  // the byte alphabet is at most 2 bytes a char
        symbols.push_back(word.substr(at, n));
        at += n;
      }
      for (size_t i = 0; i + 1 < symbols.size(); ++i) ++pairs[{symbols[i], symbols[i + 1]}];
    }
  }
  auto most = std::max_element(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(tokenizer["model"]["merges"][0], Json::array({most->first.first, most->first.second}));
  // Deterministic, and the same twice.
  TempDir again;
  EXPECT_EQ(train(again, 300), tokenizer);
}

TEST(BpeTrainer, TheResultEncodesCompactlyAndDecodesBack) {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), train(dir, 320).dump());
  auto trained = Tokenizer::load(dir.file("tokenizer.json"));
  auto bytes = Tokenizer::load(dir.file("skeleton.json"));
  const std::string text = "In the beginning God created the heaven and the earth.";
  EXPECT_LT(trained->encode(text).size() * 3, bytes->encode(text).size());
  EXPECT_EQ(trained->decode(trained->encode(text)), text);
  const std::string unseen = "Zebras \xe2\x9c\x93 quickly: 42!";  // any text still encodes, by bytes
  EXPECT_EQ(trained->decode(trained->encode(unseen)), unseen);
  // The post-processor ends every document with <|endoftext|>.
  std::vector<int64_t> framed = trained->encode(text, true);
  EXPECT_EQ(framed.back(), 256);
  EXPECT_EQ(framed.size(), trained->encode(text).size() + 1);
}

TEST(BpeTrainer, RefusesAVocabularyTooSmall) {
  TempDir dir;
  EXPECT_THROW(train(dir, 100), Error);
}

TEST(DemoTokenizer, EncodesEveryLineAsHuggingFaceDoes) {
  auto tokenizer = Tokenizer::load(std::string(CDMOE_SOURCE_DIR) + "/data/demo/model");
  const std::string fixtures = std::string(CDMOE_TEST_FIXTURES) + "/tokenizer";
  std::ifstream lines(fixtures + "/lines.jsonl"), expected(fixtures + "/expected_demo.jsonl");
  std::string line, want_line;
  int count = 0, matched = 0;
  while (std::getline(lines, line) && std::getline(expected, want_line)) {
    std::string text = Json::parse(line).get<std::string>();
    Json want = Json::parse(want_line);
    bool same = tokenizer->encode(text, false) == want["ids"].get<std::vector<int64_t>>() &&
                tokenizer->encode(text, true) == want["ids_special"].get<std::vector<int64_t>>();
    if (!same && count - matched < 5) ADD_FAILURE() << "line " << count + 1 << ": " << line;
    matched += same;
    ++count;
  }
  EXPECT_EQ(count, 1200);
  EXPECT_EQ(matched, count);
}

}  // namespace
}  // namespace cdmoe::model
