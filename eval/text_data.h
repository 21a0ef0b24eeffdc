// Text into token sequences for evaluation: lm-evaluation-harness's context/continuation split,
// and calibration / held-out data (ARCHITECTURE.md §2: e.g. 100 C4 documents of <= 256 tokens).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "model/tokenizer.h"

namespace cdmoe::eval {

// The special tokens lm-evaluation-harness's tok_encode gives a task request, which differ by
// version (and move every log-likelihood of a model whose tokenizer adds BOS, as DeepSeekMoE's):
//   kNone       none: v0.4.4 to v0.4.9.1 by default (add_bos_token=False); cdmoe's default;
//   kTokenizer  the tokenizer's own (add_special_tokens left to it): v0.4.9.2 and later by
//               default, except for a string that already starts with the BOS token's text.
enum class RequestSpecialTokens { kNone, kTokenizer };
// "none" or "tokenizer"; bad input naming `option` otherwise.
RequestSpecialTokens request_special_tokens_named(const std::string& name, const std::string& option);
// The --special-tokens option's help, for every command that scores tasks.
extern const char* const kRequestSpecialTokensHelp;

// lm-evaluation-harness's _encode_pair: what Python's rstrip() takes off the context (Unicode
// whitespace, eval/python_text.h) moves to the continuation; continuation ids = ids(context +
// continuation) after the first len(ids(context)), both encoded with `special` tokens.
std::pair<std::vector<int64_t>, std::vector<int64_t>> encode_pair(const model::Tokenizer& tokenizer,
                                                                  const std::string& context,
                                                                  const std::string& continuation,
                                                                  RequestSpecialTokens special = RequestSpecialTokens::kNone);

struct CalibrationOptions {
  int64_t samples = 100;  // documents (or blocks when packed) kept; <= 0: all
  int64_t seq_len = 256;  // tokens per sequence: documents truncated, or block length when packed
  bool packed = false;    // concatenate documents and cut blocks of seq_len
  uint64_t seed = 0;      // which documents, when the file has more than `samples`
};

struct CalibrationSet {
  std::vector<std::vector<int64_t>> sequences;
  std::string content_hash;  // sha256 of the file
};

struct Documents {
  std::vector<std::string> texts;
  std::string content_hash;  // sha256 of the file
};

// The documents of a JSONL file ({"text": ...} a line; the name ends in .jsonl) or of plain
// text (a document a non-empty line). Bad input names the file and line: missing or empty
// file, not an object, no "text", empty text, invalid UTF-8, no document at all.
Documents read_documents(const std::string& path);

// Reads JSONL ({"text": ...} a line) or plain text (a document a non-empty line). Each document
// is encoded with the tokenizer's special tokens (BOS as tokenizer_config.json says, like
// `tokenizer(text)` in transformers and the CD-MoE reference code) and truncated to seq_len;
// packed, the framed documents are concatenated and cut. Bad input names the file and line:
// not an object, no "text", empty text, invalid UTF-8.
CalibrationSet load_calibration(const std::string& path, const model::Tokenizer& tokenizer,
                                const CalibrationOptions& options);

// Right-padded [B, T] ids and mask (1 token, 0 padding) for a list of sequences.
std::pair<at::Tensor, at::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& sequences);

}  // namespace cdmoe::eval
