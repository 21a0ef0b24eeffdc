#include "model/bpe_trainer.h"

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/tokenizer.h"

namespace cdmoe::model {
namespace {

Json byte_level_step() { return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}; }

uint64_t pair_key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// UTF-8 characters of a word written in the byte alphabet: one per original byte.
std::vector<std::string> characters(const std::string& word) {
  std::vector<std::string> out;
  for (size_t at = 0; at < word.size();) {
    unsigned char lead = static_cast<unsigned char>(word[at]);
    size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : 4;
    out.push_back(word.substr(at, n));
    at += n;
  }
  return out;
}

}  // namespace

Json byte_level_skeleton(const BpeTrainingOptions& options) {
  Json vocab = Json::object();
  std::vector<std::string> alphabet = byte_level_alphabet();
  for (size_t b = 0; b < alphabet.size(); ++b) vocab[alphabet[b]] = int64_t(b);
  const int64_t eot = 256;
  vocab[options.end_of_text] = eot;  // in the model's vocabulary too: ids run 0..V-1 without a hole
  Json special = {{"id", options.end_of_text}, {"ids", {eot}}, {"tokens", {options.end_of_text}}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", {{{"id", eot}, {"content", options.end_of_text}, {"single_word", false}, {"lstrip", false},
                             {"rstrip", false}, {"normalized", false}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level_step()},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", options.end_of_text}, {"type_id", 0}}}}}},
            {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", options.end_of_text}, {"type_id", 0}}}},
                      {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}, {{"SpecialToken", {{"id", options.end_of_text}, {"type_id", 1}}}}}},
            {"special_tokens", {{options.end_of_text, special}}}}},
          {"decoder", byte_level_step()},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                     {"vocab", vocab}, {"merges", Json::array()}}}};
}

Json train_byte_level_bpe(const std::string& skeleton_path, const std::vector<std::string>& documents,
                          const BpeTrainingOptions& options, BpeTrainingStats* stats) {
  if (options.vocab_size < 258) throw_bad_input("--vocab-size must be at least 258 (256 bytes, a merge, end of text)");
  auto skeleton = Tokenizer::load(skeleton_path);
  std::unordered_map<std::string, int64_t> counts;
  BpeTrainingStats local;
  for (const std::string& document : documents) {
    for (std::string& word : skeleton->words(document)) {
      ++counts[std::move(word)];
      ++local.words;
    }
  }
  local.distinct_words = int64_t(counts.size());

  // Token texts by id: the bytes, then the end-of-text token (id 256), then merges from 257.
  std::vector<std::string> text = byte_level_alphabet();
  std::unordered_map<std::string, int> byte_id;
  for (size_t b = 0; b < text.size(); ++b) byte_id[text[b]] = int(b);
  text.push_back(options.end_of_text);
  std::unordered_map<std::string, int> id_of;  // a merge whose text exists already reuses its id
  for (size_t id = 0; id < text.size(); ++id) id_of[text[id]] = int(id);
  struct Word {
    std::vector<int> symbols;
    int64_t count;
  };
  std::vector<Word> words;
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());  // a fixed order, whatever the hash map's
  for (const auto& [word, count] : sorted) {
    Word w{{}, count};
    for (const std::string& c : characters(word)) w.symbols.push_back(byte_id.at(c));
    words.push_back(std::move(w));
  }

  Json merges = Json::array();
  std::unordered_map<uint64_t, int64_t> pairs;
  while (int64_t(text.size()) < options.vocab_size) {
    pairs.clear();
    for (const Word& w : words) {
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) pairs[pair_key(w.symbols[i], w.symbols[i + 1])] += w.count;
    }
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [key, count] : pairs) {
      if (count < best_count) continue;
      if (count == best_count) {
        auto texts = [&](uint64_t k) { return std::make_pair(text[size_t(k >> 32)], text[size_t(k & 0xffffffffu)]); };
        if (texts(key) >= texts(best)) continue;
      }
      best = key, best_count = count;
    }
    if (best_count < options.min_frequency) break;
    const int left = int(best >> 32), right = int(best & 0xffffffffu);
    const std::string joined = text[size_t(left)] + text[size_t(right)];
    auto [known, fresh] = id_of.emplace(joined, int(text.size()));
    if (fresh) text.push_back(joined);
    const int merged = known->second;
    merges.push_back({text[size_t(left)], text[size_t(right)]});
    for (Word& w : words) {
      std::vector<int>& s = w.symbols;
      size_t out = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          s[out++] = merged;
          ++i;
        } else {
          s[out++] = s[i];
        }
      }
      s.resize(out);
    }
  }
  local.merges = int64_t(merges.size());
  if (stats) *stats = local;

  Json tokenizer = byte_level_skeleton(options);
  Json& vocab = tokenizer["model"]["vocab"];
  for (size_t id = 257; id < text.size(); ++id) vocab[text[id]] = int64_t(id);
  tokenizer["model"]["merges"] = merges;
  return tokenizer;
}

}  // namespace cdmoe::model
