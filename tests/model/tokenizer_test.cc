// The tokenizer against Hugging Face's own (tests/fixtures/tokenizer/encode_golden.js): 1,200
// varied lines x 3 real tokenizer.json files (fetched by scripts/bootstrap), 100% identical.
#include "model/tokenizer.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "tests/test_util.h"

namespace cdmoe::model {
namespace {

const std::string kFixtures = std::string(CDMOE_TEST_FIXTURES) + "/tokenizer";
const std::string kTokenizers = std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers";

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

class TokenizerGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerGolden, EncodesEveryLineAsHuggingFaceDoes) {
  auto tokenizer = Tokenizer::load(kTokenizers + "/" + GetParam());
  std::vector<std::string> lines = read_lines(kFixtures + "/lines.jsonl");
  std::vector<std::string> expected = read_lines(kFixtures + "/expected_" + GetParam() + ".jsonl");
  ASSERT_EQ(lines.size(), 1200u);
  ASSERT_EQ(expected.size(), lines.size());
  int matched = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string text = Json::parse(lines[i]).get<std::string>();
    Json want = Json::parse(expected[i]);
    std::vector<int64_t> ids = tokenizer->encode(text, false);
    bool same = ids == want["ids"].get<std::vector<int64_t>>() &&
                tokenizer->encode(text, true) == want["ids_special"].get<std::vector<int64_t>>();
    matched += same;
    if (!same && matched + 20 > int(i)) {
      ADD_FAILURE() << GetParam() << " line " << i + 1 << " " << lines[i] << "\n got  " << Json(ids).dump()
                    << "\n want " << want["ids"].dump();
    }
  }
  EXPECT_EQ(matched, int(lines.size())) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Real, TokenizerGolden, ::testing::Values("qwen3", "llama2", "deepseek_v3"));

// Llama-2's tokenizer.json with a Metaspace pre-tokenizer in place of its Prepend+Replace
// normalizer (tests/fixtures/tokenizer/encode_metaspace.js made the expected ids).
TEST(Tokenizer, MetaspacePreTokenizerAsHuggingFaceDoes) {
  Json config = read_json_file(kTokenizers + "/llama2/tokenizer.json");
  config["normalizer"] = nullptr;
  Json metaspace = {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
  config["pre_tokenizer"] = metaspace;
  config["decoder"] = metaspace;
  testing::TempDir dir;
  testing::write_file(dir.file("tokenizer.json"), config.dump());
  auto tokenizer = Tokenizer::load(dir.path());
  std::vector<std::string> lines = read_lines(kFixtures + "/lines.jsonl");
  std::vector<std::string> expected = read_lines(kFixtures + "/expected_llama2_metaspace.jsonl");
  ASSERT_EQ(expected.size(), lines.size());
  int matched = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string text = Json::parse(lines[i]).get<std::string>();
    std::vector<int64_t> ids = tokenizer->encode(text);
    bool same = ids == Json::parse(expected[i])["ids"].get<std::vector<int64_t>>();
    matched += same;
    if (!same && matched + 10 > int(i)) ADD_FAILURE() << "line " << i + 1 << " " << lines[i] << " got " << Json(ids).dump() << " want " << expected[i];
  }
  EXPECT_EQ(matched, int(lines.size()));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("Hello  world")), "Hello  world");
}

TEST(Tokenizer, DecodesWhatItEncodes) {
  auto qwen = Tokenizer::load(kTokenizers + "/qwen3");
  auto llama = Tokenizer::load(kTokenizers + "/llama2");
  for (const std::string text : {"Hello world", "  two  spaces\tand tab\n", "你好，世界！ 😀👩‍💻", "café résumé"}) {
    EXPECT_EQ(qwen->decode(qwen->encode(text)), text);
    EXPECT_EQ(llama->decode(llama->encode(text)), text);
  }
}

TEST(Tokenizer, RefusesWhatItDoesNotSupport) {
  testing::TempDir dir;
  Json config = {{"model", {{"type", "WordPiece"}, {"vocab", Json::object()}}}};
  testing::write_file(dir.file("tokenizer.json"), config.dump());
  try {
    Tokenizer::load(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("model type \"WordPiece\" is not supported (supported: BPE)"), std::string::npos);
  }
  config = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", Json::array()}}},
            {"pre_tokenizer", {{"type", "Whitespace"}}}};
  testing::write_file(dir.file("tokenizer.json"), config.dump());
  EXPECT_THROW(Tokenizer::load(dir.path()), Error);
  EXPECT_THROW(Tokenizer::load(dir.file("none")), Error);
}

}  // namespace
}  // namespace cdmoe::model
