// Tokenizer: Hugging Face tokenizer.json, the two kinds of BPE MoE models use. Torch-free.
//   byte-level BPE (GPT-2 / Qwen / DeepSeek-V3): NFC normaliser, Split pre-tokenizers with
//     Unicode-property regexes (PCRE2), ByteLevel, BPE over the byte alphabet;
//   SentencePiece-style BPE (Llama-2 / DeepSeekMoE v1): Prepend/Replace normalisers or a
//     Metaspace pre-tokenizer ("▁" for spaces), BPE over characters with byte fallback (<0xNN>).
// Added tokens are matched first (leftmost-longest) and never split. With add_special_tokens,
// BOS/EOS are added as transformers' AutoTokenizer adds them: tokenizer_config.json beside
// tokenizer.json decides for Llama-family classes (LlamaTokenizer[Fast], CodeLlama, Gemma:
// add_bos_token, default true, and add_eos_token, default false, with bos_token/eos_token),
// which rebuild their template from those flags; otherwise tokenizer.json's TemplateProcessing
// post-processor does, if any. Any other component type is refused by name. Encoding is const and safe from several threads after loading
// except for its word cache (guarded by a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cdmoe::model {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (or the given file); bad input naming the field when unsupported.
  static std::unique_ptr<Tokenizer> load(const std::string& path_or_dir);
  ~Tokenizer();

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = false) const;
  // What encode(text, true) puts before and after the text's own tokens.
  const std::vector<int64_t>& special_prefix() const;
  const std::vector<int64_t>& special_suffix() const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t vocab_size() const;
  // sha256 over the files the tokenizer was read from (tokenizer.json and, when present,
  // tokenizer_config.json beside it): what a sweep or a training run records and compares.
  const std::string& fingerprint() const;
  // The words BPE runs on for `text` (no added tokens): normalised, pre-tokenised and, for a
  // byte-level model, written in its byte alphabet. What a BPE trainer counts.
  std::vector<std::string> words(const std::string& text) const;

 private:
  Tokenizer();
  static std::unique_ptr<Tokenizer> load_file(const std::string& path);  // load() without the JSON error wrapper
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GPT-2's byte-level alphabet: the character (UTF-8) that stands for each byte 0..255.
std::vector<std::string> byte_level_alphabet();

// Bad input when the tokenizer can produce ids past the model's vocabulary (ids 0..vocab_size-1),
// naming `where` (the tokenizer's file); a tokenizer smaller than the vocabulary is fine (models
// pad their embeddings).
void check_tokenizer_fits(const Tokenizer& tokenizer, int64_t vocab_size, const std::string& where);

}  // namespace cdmoe::model
