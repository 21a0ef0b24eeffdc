// A byte-level BPE tokenizer trained on documents, written as a Hugging Face tokenizer.json
// (model BPE, GPT-2's ByteLevel pre-tokenizer and decoder, one end-of-text token the
// post-processor appends to every document) that transformers, Hugging Face's tokenizers and
// model/tokenizer.h encode alike. Training is the classic algorithm: count the words the
// pre-tokenizer makes, start from the 256 byte symbols, and repeatedly merge the most frequent
// adjacent pair (ties: the lexicographically smallest pair of token texts) until the vocabulary
// is full or no pair occurs min_frequency times. Deterministic; single-threaded; torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json_fields.h"

namespace cdmoe::model {

struct BpeTrainingOptions {
  int64_t vocab_size = 4096;  // bytes + merges + the end-of-text token
  int64_t min_frequency = 2;
  std::string end_of_text = "<|endoftext|>";
};

// The tokenizer.json of the byte alphabet alone (no merges): what pre-tokenises for training.
Json byte_level_skeleton(const BpeTrainingOptions& options);

struct BpeTrainingStats {
  int64_t words = 0, distinct_words = 0, merges = 0;
};

// Trains on `documents` (each pre-tokenised by `skeleton_path`'s tokenizer, i.e. a
// byte_level_skeleton written to a file) and returns the complete tokenizer.json.
Json train_byte_level_bpe(const std::string& skeleton_path, const std::vector<std::string>& documents,
                          const BpeTrainingOptions& options, BpeTrainingStats* stats = nullptr);

}  // namespace cdmoe::model
