#include "finetune/train_data.h"

#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/random.h"
#include "core/sha256.h"
#include "eval/text_data.h"

namespace cdmoe::finetune {
namespace {

void count_targets(TokenRows& rows) {
  rows.target_tokens = 0;
  for (const TokenRow& row : rows.rows) {
    for (uint8_t t : row.target) rows.target_tokens += t;
  }
}

}  // namespace

TokenRows read_lm_rows(const std::string& path, const model::Tokenizer& tokenizer, int64_t seq_len) {
  if (seq_len < 2) throw_bad_input("--seq-len must be at least 2 (a token and its successor)");
  eval::Documents documents = eval::read_documents(path);
  std::vector<int64_t> stream;
  for (const std::string& text : documents.texts) {
    std::vector<int64_t> ids = tokenizer.encode(text, /*add_special_tokens=*/true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  if (int64_t(stream.size()) < seq_len) {
    throw_bad_input(path + ": " + std::to_string(stream.size()) + " tokens, fewer than one block of --seq-len " +
                    std::to_string(seq_len));
  }
  TokenRows rows{{}, documents.content_hash, 0};
  for (size_t at = 0; at + 1 < stream.size(); at += size_t(seq_len)) {
    size_t end = std::min(stream.size(), at + size_t(seq_len));
    TokenRow row{{stream.begin() + long(at), stream.begin() + long(end)}, {}};
    row.target.assign(row.ids.size(), 1);
    row.target[0] = 0;
    rows.rows.push_back(std::move(row));
  }
  count_targets(rows);
  return rows;
}

TokenRows read_sft_rows(const std::string& path, const model::Tokenizer& tokenizer, int64_t seq_len) {
  if (seq_len < 2) throw_bad_input("--seq-len must be at least 2 (a token and its successor)");
  std::string text = read_text_file(path);
  if (text.empty()) throw_bad_input(path + ": is empty");
  TokenRows rows{{}, sha256_hex(text), 0};
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    Json object = parse_json_text(line, where);
    if (!object.is_object()) throw_bad_input(where + ": expected a JSON object with \"prompt\" and \"response\"");
    std::string prompt = require_string(object, "prompt", where);
    std::string response = require_string(object, "response", where);
    if (response.empty()) throw_bad_input(where + ": \"response\" is empty");
    TokenRow row;
    auto append = [&row](const std::vector<int64_t>& ids, uint8_t target) {
      row.ids.insert(row.ids.end(), ids.begin(), ids.end());
      row.target.insert(row.target.end(), ids.size(), target);
    };
    append(tokenizer.special_prefix(), 0);
    append(tokenizer.encode(prompt), 0);
    append(tokenizer.encode(response), 1);
    append(tokenizer.special_suffix(), 1);
    if (row.ids.size() > size_t(seq_len)) {
      row.ids.resize(size_t(seq_len));
      row.target.resize(size_t(seq_len));
    }
    if (!row.target.empty()) row.target[0] = 0;  // a row's first token has nothing before it
    bool any = false;
    for (uint8_t t : row.target) any = any || t;
    if (!any) throw_bad_input(where + ": the prompt fills --seq-len " + std::to_string(seq_len) + "; no response token is left to train on");
    rows.rows.push_back(std::move(row));
  }
  if (rows.rows.empty()) throw_bad_input(path + ": holds no examples");
  count_targets(rows);
  return rows;
}

std::vector<int64_t> epoch_order(int64_t rows, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) order[size_t(i)] = i;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch));
  for (int64_t i = rows - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(uniform_below(rng, uint64_t(i) + 1))]);
  return order;
}

}  // namespace cdmoe::finetune
