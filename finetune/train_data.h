// Fine-tuning data as token rows of at most seq_len tokens, each token marked whether it is a
// target of the loss (predicted from the tokens before it in its row). Torch-free.
//  - Language-model text (JSONL {"text"} or a document a line, eval::read_documents): each
//    document encoded with the tokenizer's special tokens, concatenated in file order and cut
//    into blocks of seq_len; the last, shorter block is kept (the batch pads it, and padding is
//    never a target). Every token but a row's first is a target.
//  - SFT (JSONL {"prompt", "response"}): one row per line, prefix + prompt + response + suffix
//    (the tokenizer's special tokens around the pair), truncated to seq_len; only the response
//    and suffix tokens are targets.
// Bad input names the file and line: missing/empty file, a field missing or not a string, data
// with fewer than seq_len tokens, an SFT line whose response does not fit in seq_len.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace cdmoe::finetune {

struct TokenRow {
  std::vector<int64_t> ids;
  std::vector<uint8_t> target;  // target[t] = 1: ids[t] counts in the loss (target[0] is 0)
};

struct TokenRows {
  std::vector<TokenRow> rows;
  std::string content_hash;  // sha256 of the file
  int64_t target_tokens = 0;
};

TokenRows read_lm_rows(const std::string& path, const model::Tokenizer& tokenizer, int64_t seq_len);
TokenRows read_sft_rows(const std::string& path, const model::Tokenizer& tokenizer, int64_t seq_len);

// The row order of every epoch: a seeded permutation of 0..rows-1 per epoch (portable draws,
// core/random.h), so the data position alone says which rows come next.
std::vector<int64_t> epoch_order(int64_t rows, uint64_t seed, int64_t epoch);

}  // namespace cdmoe::finetune
