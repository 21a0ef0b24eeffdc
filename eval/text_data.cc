#include "eval/text_data.h"

#include <algorithm>
#include <limits>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/random.h"
#include "core/sha256.h"
#include "eval/python_text.h"
#include "eval/tasks.h"

namespace cdmoe::eval {

RequestSpecialTokens request_special_tokens_named(const std::string& name, const std::string& option) {
  if (name == "none") return RequestSpecialTokens::kNone;
  if (name == "tokenizer") return RequestSpecialTokens::kTokenizer;
  throw_bad_input(option + " \"" + name + "\" is not one of none, tokenizer");
}

const char* const kRequestSpecialTokensHelp =
    "special tokens in task requests, as lm-evaluation-harness's tok_encode adds them: none (lm-eval v0.4.4 to "
    "v0.4.9.1's default) or tokenizer (v0.4.9.2 and later: what the tokenizer adds, e.g. DeepSeekMoE's BOS)";

std::pair<std::vector<int64_t>, std::vector<int64_t>> encode_pair(const model::Tokenizer& tokenizer,
                                                                  const std::string& context,
                                                                  const std::string& continuation,
                                                                  RequestSpecialTokens special) {
  std::string ctx = python_rstrip(context, "task request context");
  std::string cont = context.substr(ctx.size()) + continuation;
  auto encode = [&](const std::string& text) {
    bool add = special == RequestSpecialTokens::kTokenizer;
    if (add && !tokenizer.special_prefix().empty()) {
      // lm-eval's has_bos_prefix: a string that starts with the BOS text gets no special tokens.
      std::string bos = tokenizer.decode({tokenizer.special_prefix().front()});
      add = text.compare(0, bos.size(), bos) != 0;
    }
    return tokenizer.encode(text, add);
  };
  std::vector<int64_t> whole = encode(ctx + cont), context_ids = encode(ctx);
  std::vector<int64_t> continuation_ids(whole.begin() + long(std::min(context_ids.size(), whole.size())), whole.end());
  return {context_ids, continuation_ids};
}

namespace {

// Byte offset <= at that does not split a UTF-8 character of text.
size_t utf8_boundary(const std::string& text, size_t at) {
  if (at >= text.size()) return text.size();
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

// The first max_tokens tokens of document (encoded with special tokens), tokenising only a
// leading part of a long document: a prefix's tokens are kept when a prefix twice as long
// gives the same first max_tokens (tokens can only change near the cut), else the prefix
// grows. A 5 MB line costs what its first few KiB cost.
std::vector<int64_t> encode_leading(const model::Tokenizer& tokenizer, const std::string& document, int64_t max_tokens) {
  const size_t wanted = size_t(max_tokens);
  const size_t suffix = tokenizer.special_suffix().size();
  for (size_t bytes = std::max<size_t>(4096, wanted * 32); bytes < document.size(); bytes *= 4) {
    size_t cut = utf8_boundary(document, bytes);
    std::vector<int64_t> prefix = tokenizer.encode(document.substr(0, cut), /*add_special_tokens=*/true);
    if (prefix.size() < wanted + suffix + 1) continue;  // the cut is too near: longer prefix
    std::vector<int64_t> longer = tokenizer.encode(document.substr(0, utf8_boundary(document, 2 * cut)), true);
    if (longer.size() >= wanted && std::equal(prefix.begin(), prefix.begin() + long(wanted), longer.begin())) {
      prefix.resize(wanted);
      return prefix;
    }
  }
  std::vector<int64_t> ids = tokenizer.encode(document, /*add_special_tokens=*/true);
  if (ids.size() > wanted) ids.resize(wanted);
  return ids;
}

}  // namespace

Documents read_documents(const std::string& path) {
  std::string text = read_text_file(path);
  if (text.empty()) throw_bad_input(path + ": is empty");
  bool jsonl = path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  Documents documents{{}, sha256_hex(text)};
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::string where = path + ":" + std::to_string(number);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF: the same document as LF
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string document = line;
    if (jsonl) {
      Json object = parse_json_text(line, where);
      if (!object.is_object()) throw_bad_input(where + ": expected a JSON object with a \"text\" field");
      document = require_string(object, "text", where);
      if (document.empty()) throw_bad_input(where + ": \"text\" is empty");
    }
    count_code_points(document, where);  // refuses invalid UTF-8, naming the line
    documents.texts.push_back(std::move(document));
  }
  if (documents.texts.empty()) throw_bad_input(path + ": holds no documents");
  return documents;
}

CalibrationSet load_calibration(const std::string& path, const model::Tokenizer& tokenizer,
                                const CalibrationOptions& options) {
  if (options.seq_len < 1) throw_bad_input("--seq-len must be at least 1");
  Documents read = read_documents(path);
  const std::vector<std::string>& documents = read.texts;
  CalibrationSet set{{}, read.content_hash};
  if (options.packed) {
    std::vector<int64_t> stream;
    for (const std::string& document : documents) {
      std::vector<int64_t> ids = tokenizer.encode(document, /*add_special_tokens=*/true);
      stream.insert(stream.end(), ids.begin(), ids.end());
    }
    for (size_t at = 0; at + size_t(options.seq_len) <= stream.size(); at += size_t(options.seq_len)) {
      set.sequences.emplace_back(stream.begin() + long(at), stream.begin() + long(at) + options.seq_len);
      if (options.samples > 0 && int64_t(set.sequences.size()) == options.samples) break;
    }
    if (set.sequences.empty()) throw_bad_input(path + ": fewer than " + std::to_string(options.seq_len) + " tokens to pack");
    return set;
  }
  // Which documents: all, or a seeded choice kept in file order (portable: raw 64-bit draws).
  std::vector<size_t> chosen(documents.size());
  for (size_t i = 0; i < chosen.size(); ++i) chosen[i] = i;
  if (options.samples > 0 && int64_t(documents.size()) > options.samples) {
    std::mt19937_64 rng(options.seed);
    for (size_t i = 0; i < size_t(options.samples); ++i) {
      std::swap(chosen[i], chosen[i + size_t(uniform_below(rng, chosen.size() - i))]);
    }
    chosen.resize(size_t(options.samples));
    std::sort(chosen.begin(), chosen.end());
  }
  for (size_t index : chosen) {
    std::vector<int64_t> ids = encode_leading(tokenizer, documents[index], options.seq_len);
    if (!ids.empty()) set.sequences.push_back(std::move(ids));
  }
  return set;
}

std::pair<at::Tensor, at::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& sequences) {
  int64_t width = 0;
  for (const auto& s : sequences) width = std::max<int64_t>(width, int64_t(s.size()));
  at::Tensor ids = at::zeros({int64_t(sequences.size()), width}, at::kLong);
  at::Tensor mask = at::zeros({int64_t(sequences.size()), width}, at::kLong);
  for (size_t r = 0; r < sequences.size(); ++r) {
    if (sequences[r].empty()) continue;
    ids[int64_t(r)].narrow(0, 0, int64_t(sequences[r].size())).copy_(at::tensor(sequences[r], at::kLong));
    mask[int64_t(r)].narrow(0, 0, int64_t(sequences[r].size())).fill_(1);
  }
  return {ids, mask};
}

}  // namespace cdmoe::eval
