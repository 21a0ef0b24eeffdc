// Context/continuation splits against Hugging Face's tokenizers (tests/fixtures/tokenizer/
// encode_pairs.js) and calibration data loading.
#include "eval/text_data.h"

#include <algorithm>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "tests/test_util.h"

namespace cdmoe::eval {
namespace {

const std::string kTokenizers = std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers";
const std::string kFixtures = std::string(CDMOE_TEST_FIXTURES) + "/tokenizer";

class PairGolden : public ::testing::TestWithParam<std::string> {};

// Both ways lm-eval's tok_encode encodes a request (--special-tokens none / tokenizer), and
// Python's Unicode whitespace moving from the context to the continuation.
TEST_P(PairGolden, SplitsAsTheHarnessDoes) {
  auto tokenizer = model::Tokenizer::load(kTokenizers + "/" + GetParam());
  std::ifstream in(kFixtures + "/pairs_" + GetParam() + ".jsonl");
  std::string line;
  int pairs = 0, with_bos = 0;
  while (std::getline(in, line)) {
    Json pair = Json::parse(line);
    auto [context, continuation] = encode_pair(*tokenizer, pair["context"], pair["continuation"]);
    EXPECT_EQ(context, pair["context_ids"].get<std::vector<int64_t>>()) << pair["context"];
    EXPECT_EQ(continuation, pair["continuation_ids"].get<std::vector<int64_t>>()) << pair["continuation"];
    auto [context_special, continuation_special] =
        encode_pair(*tokenizer, pair["context"], pair["continuation"], RequestSpecialTokens::kTokenizer);
    EXPECT_EQ(context_special, pair["context_ids_special"].get<std::vector<int64_t>>()) << pair["context"];
    EXPECT_EQ(continuation_special, pair["continuation_ids_special"].get<std::vector<int64_t>>()) << pair["continuation"];
    with_bos += context_special.size() > context.size();
    ++pairs;
  }
  // 91 PIQA / ARC-Easy pairs, 3 with Unicode whitespace, and for Llama-2 one that starts with "<s>".
  EXPECT_EQ(pairs, GetParam() == "llama2" ? 95 : 94);
  EXPECT_EQ(with_bos, GetParam() == "llama2" ? 94 : 0) << "Llama-2's tokenizer adds BOS, Qwen3's none";
}

TEST(RequestSpecialTokens, NamedOrRefusedNamingTheOption) {
  EXPECT_EQ(request_special_tokens_named("none", "--special-tokens"), RequestSpecialTokens::kNone);
  EXPECT_EQ(request_special_tokens_named("tokenizer", "--special-tokens"), RequestSpecialTokens::kTokenizer);
  try {
    request_special_tokens_named("bos", "--special-tokens");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_EQ(std::string(e.what()), "--special-tokens \"bos\" is not one of none, tokenizer");
  }
}

INSTANTIATE_TEST_SUITE_P(Real, PairGolden, ::testing::Values("qwen3", "llama2"));

// A plain-text document file with CRLF line ends gives the same documents as with LF (the
// carriage return is not part of the text the tokenizer sees).
TEST(Calibration, CrlfLineEndsGiveTheSameDocuments) {
  testing::TempDir dir;
  testing::write_file(dir.file("lf.txt"), "First document here.\nSecond one.\n\nThird.\n");
  testing::write_file(dir.file("crlf.txt"), "First document here.\r\nSecond one.\r\n\r\nThird.\r\n");
  EXPECT_EQ(read_documents(dir.file("crlf.txt")).texts, read_documents(dir.file("lf.txt")).texts);
  EXPECT_EQ(read_documents(dir.file("crlf.txt")).texts.size(), 3u);
}

TEST(Calibration, LoadsSamplesTruncatesAndPacks) {
  auto tokenizer = model::Tokenizer::load(kTokenizers + "/qwen3");
  testing::TempDir dir;
  std::string jsonl = dir.file("calib.jsonl"), plain = dir.file("calib.txt");
  std::string jsonl_text, plain_text;
  for (int i = 0; i < 30; ++i) {
    std::string doc = "Document " + std::to_string(i) + " talks about experts, routers and condensed layers again and again.";
    jsonl_text += Json{{"text", doc}}.dump() + "\n";
    plain_text += doc + "\n\n";
  }
  testing::write_file(jsonl, jsonl_text);
  testing::write_file(plain, plain_text);
  CalibrationOptions options;
  options.samples = 10;
  options.seq_len = 8;
  options.seed = 3;
  CalibrationSet a = load_calibration(jsonl, *tokenizer, options);
  ASSERT_EQ(a.sequences.size(), 10u);
  for (const auto& s : a.sequences) EXPECT_EQ(s.size(), 8u);
  EXPECT_EQ(a.sequences, load_calibration(jsonl, *tokenizer, options).sequences) << "deterministic by seed";
  EXPECT_EQ(a.sequences, load_calibration(plain, *tokenizer, options).sequences) << "plain text: a document a line";
  options.seed = 4;
  EXPECT_NE(a.sequences, load_calibration(jsonl, *tokenizer, options).sequences);
  EXPECT_EQ(a.content_hash.size(), 64u);
  options.packed = true;
  options.seq_len = 64;
  options.samples = 0;
  CalibrationSet packed = load_calibration(jsonl, *tokenizer, options);
  size_t total = 0;
  for (int i = 0; i < 30; ++i) {
    total += tokenizer->encode("Document " + std::to_string(i) + " talks about experts, routers and condensed layers again and again.").size();
  }
  EXPECT_EQ(packed.sequences.size(), total / 64);

  // With Llama-2's tokenizer (add_bos_token in its tokenizer_config.json) every document starts
  // with BOS <s> = 1, and packing keeps each document's BOS.
  auto llama = model::Tokenizer::load(kTokenizers + "/llama2");
  options = CalibrationOptions{};
  options.seq_len = 6;
  CalibrationSet framed = load_calibration(jsonl, *llama, options);
  ASSERT_EQ(framed.sequences.size(), 30u);
  std::vector<int64_t> first = llama->encode("Document 0 talks about experts, routers and condensed layers again and again.");
  first.insert(first.begin(), 1);
  first.resize(6);
  EXPECT_EQ(framed.sequences[0], first);
  options.packed = true;
  options.seq_len = 512;
  CalibrationSet stream = load_calibration(jsonl, *llama, options);
  ASSERT_FALSE(stream.sequences.empty());
  EXPECT_GE(std::count(stream.sequences[0].begin(), stream.sequences[0].end(), int64_t(1)), 2);
  auto [ids, mask] = pad_batch({{1, 2, 3}, {4}});
  EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(mask.sum().item<int64_t>(), 4);
}

// A long document is tokenised only as far as its leading tokens need: the sequence equals the
// whole document's encoding cut to seq_len, for documents of every length around the cut.
TEST(Calibration, ALongDocumentGivesTheSameLeadingTokensAsTheWholeOfIt) {
  auto tokenizer = model::Tokenizer::load(kTokenizers + "/llama2");
  testing::TempDir dir;
  std::vector<std::string> documents;
  std::string words;
  for (int i = 0; i < 6000; ++i) words += (i % 7 ? "routed " : "condensed-experts, ") + std::to_string(i % 13) + " ";
  documents.push_back(words);                            // ~60 KB of many words
  documents.push_back(std::string(300000, 'a'));          // one 300 KB word
  documents.push_back(std::string(5000, 'x') + " tail");  // a word across the first cut
  std::string text;
  for (const std::string& d : documents) text += Json{{"text", d}}.dump() + "\n";
  testing::write_file(dir.file("long.jsonl"), text);
  for (int64_t seq_len : {1, 7, 64, 200}) {
    CalibrationOptions options;
    options.samples = 0;
    options.seq_len = seq_len;
    CalibrationSet set = load_calibration(dir.file("long.jsonl"), *tokenizer, options);
    ASSERT_EQ(set.sequences.size(), documents.size());
    for (size_t i = 0; i < documents.size(); ++i) {
      std::vector<int64_t> whole = tokenizer->encode(documents[i], /*add_special_tokens=*/true);
      whole.resize(std::min(whole.size(), size_t(seq_len)));
      EXPECT_EQ(set.sequences[i], whole) << "document " << i << ", seq_len " << seq_len;
    }
  }
}

TEST(Calibration, BadFilesNameTheLine) {
  auto tokenizer = model::Tokenizer::load(kTokenizers + "/llama2");
  testing::TempDir dir;
  auto error = [&](const std::string& name, const std::string& contents) {
    testing::write_file(dir.file(name), contents);
    try {
      load_calibration(dir.file(name), *tokenizer, CalibrationOptions{});
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      std::string message = e.what();
      return message.substr(message.find(name));
    }
    ADD_FAILURE() << "accepted " << name;
    return std::string();
  };
  EXPECT_EQ(error("a.jsonl", "{\"text\": \"ok\"}\n[1]\n"), "a.jsonl:2: expected a JSON object with a \"text\" field");
  EXPECT_EQ(error("b.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n"), "b.jsonl:2: missing required field 'text'");
  EXPECT_EQ(error("c.jsonl", "{\"text\": \"\"}\n"), "c.jsonl:1: \"text\" is empty");
  EXPECT_EQ(error("d.txt", "fine\nbad \xff byte\n"), "d.txt:2 is not valid UTF-8 (byte 4)");
  EXPECT_EQ(error("e.txt", ""), "e.txt: is empty");
  EXPECT_EQ(error("f.txt", "\n\n"), "f.txt: holds no documents");
}

}  // namespace
}  // namespace cdmoe::eval
