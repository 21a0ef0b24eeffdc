#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <queue>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/sha256.h"

namespace cdmoe::model {
namespace {

constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

size_t utf8_length(unsigned char lead) { return lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : 4; }

std::string encode_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) out += char(cp);
  else if (cp < 0x800) out += char(0xc0 | cp >> 6), out += char(0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out += char(0xe0 | cp >> 12), out += char(0x80 | (cp >> 6 & 0x3f)), out += char(0x80 | (cp & 0x3f));
  else out += char(0xf0 | cp >> 18), out += char(0x80 | (cp >> 12 & 0x3f)), out += char(0x80 | (cp >> 6 & 0x3f)), out += char(0x80 | (cp & 0x3f));
  return out;
}

// A compiled PCRE2 pattern in UTF + Unicode-property mode (\p{L}, \s as Unicode defines them).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                          &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw_bad_input(where + ": regex does not compile at offset " + std::to_string(offset) + ": " +
                      reinterpret_cast<char*>(message));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Splits `text` into matches and the gaps between them, in order ("Isolated").
  void split_isolated(const std::string& text, std::vector<std::string>& out) const {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0, gap = 0;
    // PCRE2 checks the UTF-8 of the subject from the start offset to its end at every call: once
    // is enough (each later start is a match's end or a character further, so on a boundary).
    // Checking it every time made one long line quadratic (BENCHMARKS.md, tokenizer).
    uint32_t options = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, options, match, nullptr);
      options = PCRE2_NO_UTF_CHECK;
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
      size_t begin = ov[0], end = ov[1];
      if (end == begin) {  // empty match: step one character on
        start = begin < text.size() ? begin + utf8_length(static_cast<unsigned char>(text[begin])) : text.size() + 1;
        continue;
      }
      if (begin > gap) out.push_back(text.substr(gap, begin - gap));
      out.push_back(text.substr(begin, end - begin));
      gap = start = end;
    }
    if (gap < text.size()) out.push_back(text.substr(gap));
    pcre2_match_data_free(match);
  }

 private:
  pcre2_code* code_ = nullptr;
};

struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplace } kind;
  std::string a, b;
};

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace } kind = Kind::kSplit;
  std::shared_ptr<Regex> regex;
  bool add_prefix_space = false;
  std::string replacement;      // Metaspace: stands for a space, usually "▁"
  std::string prepend_scheme;   // Metaspace: always, first, never
  bool split = true;            // Metaspace: each replacement starts a new piece
};

void collect_normalizers(const Json& node, std::vector<NormalizerStep>& steps, const std::string& where) {
  if (node.is_null()) return;
  std::string type = require_string(node, "type", where);
  if (type == "Sequence") {
    for (const Json& child : require_field(node, "normalizers", where)) collect_normalizers(child, steps, where);
  } else if (type == "NFC") {
    steps.push_back({NormalizerStep::Kind::kNfc, "", ""});
  } else if (type == "Prepend") {
    steps.push_back({NormalizerStep::Kind::kPrepend, require_string(node, "prepend", where), ""});
  } else if (type == "Replace") {
    steps.push_back({NormalizerStep::Kind::kReplace, require_string(require_field(node, "pattern", where), "String", where),
                     require_string(node, "content", where)});
  } else {
    throw_bad_input(where + ": normalizer type \"" + type + "\" is not supported (supported: Sequence, NFC, Prepend, Replace)");
  }
}

void collect_pre_tokenizers(const Json& node, std::vector<PreTokenizerStep>& steps, const std::string& where) {
  if (node.is_null()) return;
  std::string type = require_string(node, "type", where);
  if (type == "Sequence") {
    for (const Json& child : require_field(node, "pretokenizers", where)) collect_pre_tokenizers(child, steps, where);
  } else if (type == "Split") {
    std::string behavior = require_string(node, "behavior", where);
    if (behavior != "Isolated" || bool_or(node, "invert", false, where)) {
      throw_bad_input(where + ": Split behavior \"" + behavior + "\" is not supported (supported: Isolated)");
    }
    const Json& pattern = require_field(node, "pattern", where);
    std::string regex = pattern.contains("Regex") ? require_string(pattern, "Regex", where) : std::string();
    if (regex.empty()) throw_bad_input(where + ": Split needs a Regex pattern");
    PreTokenizerStep step;
    step.regex = std::make_shared<Regex>(regex, where + ": Split");
    steps.push_back(step);
  } else if (type == "ByteLevel") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = bool_or(node, "add_prefix_space", false, where);
    if (bool_or(node, "use_regex", true, where)) step.regex = std::make_shared<Regex>(kGpt2Pattern, where + ": ByteLevel");
    steps.push_back(step);
  } else if (type == "Metaspace") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    step.replacement = string_or(node, "replacement", "\xe2\x96\x81", where);
    // Older files say add_prefix_space instead of prepend_scheme.
    step.prepend_scheme = string_or(node, "prepend_scheme", bool_or(node, "add_prefix_space", true, where) ? "always" : "never", where);
    if (step.prepend_scheme != "always" && step.prepend_scheme != "first" && step.prepend_scheme != "never") {
      throw_bad_input(where + ": Metaspace prepend_scheme \"" + step.prepend_scheme + "\" is not one of always, first, never");
    }
    step.split = bool_or(node, "split", true, where);
    steps.push_back(step);
  } else {
    throw_bad_input(where + ": pre_tokenizer type \"" + type + "\" is not supported (supported: Sequence, Split, ByteLevel, Metaspace)");
  }
}

}  // namespace

struct Tokenizer::Impl {
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  bool byte_level = false;  // the model's alphabet is GPT-2's byte alphabet
  std::unordered_map<std::string, int64_t> vocab;
  std::vector<std::string> id_to_token;
  std::unordered_map<uint64_t, std::pair<int, int64_t>> merges;  // (left id, right id) -> (rank, merged id)
  bool byte_fallback = false;
  int64_t unk_id = -1;
  std::map<std::string, int64_t> added;              // content -> id
  std::map<unsigned char, std::vector<std::string>> added_by_first_byte;  // longest first
  std::vector<int64_t> special_prefix, special_suffix;  // what add_special_tokens adds around the text
  std::string fingerprint;  // sha256 of the files read
  std::string byte_to_char[256];
  std::unordered_map<std::string, unsigned char> char_to_byte;
  enum class Decoder { kByteLevel, kMetaspace } decoder = Decoder::kByteLevel;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;

  std::string normalize(std::string text) const {
    for (const NormalizerStep& step : normalizers) {
      if (step.kind == NormalizerStep::Kind::kNfc) {
        utf8proc_uint8_t* nfc = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
        if (!nfc) throw_bad_input("text is not valid UTF-8");
        text = reinterpret_cast<char*>(nfc);
        std::free(nfc);
      } else if (step.kind == NormalizerStep::Kind::kPrepend) {
        if (!text.empty()) text = step.a + text;
      } else {
        std::string out;
        for (size_t at = 0;;) {
          size_t next = text.find(step.a, at);
          if (next == std::string::npos || step.a.empty()) {
            out += text.substr(at);
            break;
          }
          out += text.substr(at, next - at) + step.b;
          at = next + step.a.size();
        }
        text = std::move(out);
      }
    }
    return text;
  }

  // Spaces become the replacement, which is prepended by the scheme; with split, every
  // replacement starts a new piece ("merged with next").
  static void metaspace(const PreTokenizerStep& step, const std::string& piece, bool first_segment,
                        std::vector<std::string>& out) {
    if (piece.empty()) return;
    std::string text;
    for (char c : piece) {
      if (c == ' ') text += step.replacement; else text += c;
    }
    bool prepend = step.prepend_scheme == "always" || (step.prepend_scheme == "first" && first_segment);
    if (prepend && text.compare(0, step.replacement.size(), step.replacement) != 0) text = step.replacement + text;
    if (!step.split) {
      out.push_back(text);
      return;
    }
    size_t start = 0;
    for (size_t at = text.find(step.replacement, 1); at != std::string::npos; at = text.find(step.replacement, at + 1)) {
      if (at > start) out.push_back(text.substr(start, at - start));
      start = at;
    }
    out.push_back(text.substr(start));
  }

  std::vector<std::string> pre_tokenize(const std::string& text, bool first_segment) const {
    std::vector<std::string> pieces = {text};
    for (const PreTokenizerStep& step : pre_tokenizers) {
      std::vector<std::string> next;
      for (std::string& piece : pieces) {
        if (step.kind == PreTokenizerStep::Kind::kSplit) {
          step.regex->split_isolated(piece, next);
          continue;
        }
        if (step.kind == PreTokenizerStep::Kind::kMetaspace) {
          metaspace(step, piece, first_segment, next);
          continue;
        }
        if (step.add_prefix_space && (piece.empty() || piece[0] != ' ')) piece = " " + piece;
        std::vector<std::string> parts;
        if (step.regex) step.regex->split_isolated(piece, parts); else parts.push_back(piece);
        for (const std::string& part : parts) {
          std::string mapped;
          for (unsigned char c : part) mapped += byte_to_char[c];
          next.push_back(std::move(mapped));
        }
      }
      pieces = std::move(next);
    }
    return pieces;
  }

  // BPE over one word: characters, then the lowest-ranked adjacent merge (leftmost on ties)
  // until none applies; unknown characters fall back to <0xNN> bytes.
  void bpe(const std::string& word, std::vector<int64_t>& out) const {
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto hit = cache.find(word);
      if (hit != cache.end()) {
        out.insert(out.end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
    // Symbols are byte ranges of `word` in a linked list; candidate merges wait in a heap by
    // (rank, position), so the lowest-ranked leftmost pair merges first as in the plain loop,
    // in O(n log n) instead of O(n^2) (a 5 MB word would otherwise take hours).
    struct Symbol {
      int64_t id;
      size_t begin, length;
      int prev, next;  // neighbours, -1 at the ends
    };
    std::vector<Symbol> all;
    for (size_t i = 0; i < word.size();) {
      size_t n = std::min(utf8_length(static_cast<unsigned char>(word[i])), word.size() - i);
      auto it = vocab.find(word.substr(i, n));
      int index = int(all.size());
      all.push_back({it == vocab.end() ? -1 : it->second, i, n, index - 1, -1});
      if (index > 0) all[size_t(index - 1)].next = index;
      i += n;
    }
    struct Candidate {
      int rank, position;
      int64_t left, right, merged;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : position > o.position; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto offer = [&](int left) {
      if (left < 0) return;
      int right = all[size_t(left)].next;
      if (right < 0 || all[size_t(left)].id < 0 || all[size_t(right)].id < 0) return;
      auto it = merges.find(uint64_t(all[size_t(left)].id) << 32 | uint64_t(all[size_t(right)].id));
      if (it != merges.end()) {
        queue.push({it->second.first, left, all[size_t(left)].id, all[size_t(right)].id, it->second.second});
      }
    };
    for (int i = 0; i + 1 < int(all.size()); ++i) offer(i);
    while (!queue.empty()) {
      Candidate c = queue.top();
      queue.pop();
      Symbol& left = all[size_t(c.position)];
      if (left.length == 0 || left.id != c.left || left.next < 0) continue;  // stale: merged away since
      Symbol& right = all[size_t(left.next)];
      if (right.id != c.right) continue;
      left.id = c.merged;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (left.next >= 0) all[size_t(left.next)].prev = c.position;
      offer(left.prev);
      offer(c.position);
    }
    struct Piece {
      int64_t id;
      std::string text;
    };
    std::vector<Piece> symbols;
    for (int i = all.empty() ? -1 : 0; i >= 0; i = all[size_t(i)].next) {
      symbols.push_back({all[size_t(i)].id, word.substr(all[size_t(i)].begin, all[size_t(i)].length)});
    }
    std::vector<int64_t> ids;
    for (const Piece& s : symbols) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      bool fell_back = byte_fallback;
      std::vector<int64_t> bytes;
      for (unsigned char c : s.text) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", c);
        auto it = vocab.find(name);
        if (it == vocab.end()) fell_back = false;
        else bytes.push_back(it->second);
      }
      if (fell_back) {
        ids.insert(ids.end(), bytes.begin(), bytes.end());
      } else {
        if (unk_id < 0) throw_runtime("tokenizer: character '" + s.text + "' is not in the vocabulary and there is no unk token");
        if (ids.empty() || ids.back() != unk_id) ids.push_back(unk_id);  // fuse_unk
      }
    }
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() > 200000) cache.clear();
    cache.emplace(word, std::move(ids));
  }

  void encode_segment(const std::string& text, bool first_segment, std::vector<int64_t>& out) const {
    for (const std::string& piece : pre_tokenize(normalize(text), first_segment)) {
      if (!piece.empty()) bpe(piece, out);
    }
  }
};

namespace {

// A token id as tokenizer.json holds it: an integer in [0, 2^24). Ids index dense tables, and
// real vocabularies stay far below (151k for Qwen, 256k for Gemma).
int64_t token_id(const Json& value, const std::string& field, const std::string& path) {
  constexpr int64_t kMaxTokenId = int64_t(1) << 24;
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= kMaxTokenId) {
    throw_bad_input(path + ": " + field + " must be a token id in [0, 2^24), got " + describe_json(value));
  }
  return value.get<int64_t>();
}

// A special token in tokenizer_config.json: a string, or an AddedToken object with "content".
std::string special_token_text(const Json& config, const std::string& field, const std::string& where) {
  if (!config.contains(field) || config[field].is_null()) return "";
  const Json& value = config[field];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) return require_string(value, "content", where + ": " + field);
  throw_bad_input(where + ": field '" + field + "' must be a string or an object with \"content\"");
}

bool is_llama_family(const std::string& tokenizer_class) {
  for (const char* name : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                           "GemmaTokenizer", "GemmaTokenizerFast"}) {
    if (tokenizer_class == name) return true;
  }
  return false;
}

}  // namespace

// transformers' Llama-family fast tokenizers rebuild their post-processor from the config's
// add_bos_token/add_eos_token (update_post_processor), whatever tokenizer.json says; other
// classes keep tokenizer.json's. No config file: tokenizer.json alone, as the Rust library does.
template <typename Vocab>
void apply_tokenizer_config(const std::filesystem::path& file, const std::map<std::string, int64_t>& added_tokens,
                            const Vocab& vocab, std::vector<int64_t>& prefix, std::vector<int64_t>& suffix,
                            std::string& read_bytes) {
  if (!std::filesystem::exists(file)) return;
  std::string where = file.string();
  read_bytes = read_text_file(where);
  Json config = parse_json_text(read_bytes, where);
  if (!config.is_object()) throw_bad_input(where + ": expected a JSON object");
  if (!is_llama_family(string_or(config, "tokenizer_class", "", where))) return;
  auto id_of = [&](const std::string& field) {
    std::string text = special_token_text(config, field, where);
    if (text.empty()) throw_bad_input(where + ": '" + field + "' is needed (add_" + field + " is true) but missing");
    auto added = added_tokens.find(text);
    if (added != added_tokens.end()) return added->second;
    auto in_vocab = vocab.find(text);
    if (in_vocab == vocab.end()) throw_bad_input(where + ": " + field + " \"" + text + "\" is not in the vocabulary");
    return in_vocab->second;
  };
  prefix.clear();
  suffix.clear();
  if (bool_or(config, "add_bos_token", true, where)) prefix.push_back(id_of("bos_token"));
  if (bool_or(config, "add_eos_token", false, where)) suffix.push_back(id_of("eos_token"));
}

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path_or_dir) {
  std::string path = path_or_dir;
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) path += "/tokenizer.json";
  return with_json_errors(path, [&] { return load_file(path); });
}

std::unique_ptr<Tokenizer> Tokenizer::load_file(const std::string& path) {
  const std::string tokenizer_bytes = read_text_file(path);
  Json config = parse_json_text(tokenizer_bytes, path);
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  Impl& t = *tokenizer->impl_;

  const Json& model = require_field(config, "model", path);
  std::string type = require_string(model, "type", path + ": model");
  if (type != "BPE") throw_bad_input(path + ": model type \"" + type + "\" is not supported (supported: BPE)");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!string_or(model, affix, "", path + ": model").empty()) {
      throw_bad_input(path + ": model." + affix + " is not supported");
    }
  }
  const Json& vocab = require_field(model, "vocab", path + ": model");
  if (!vocab.is_object()) throw_bad_input(path + ": model.vocab must be an object");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) t.vocab[it.key()] = token_id(*it, "model.vocab." + it.key(), path);
  t.byte_fallback = bool_or(model, "byte_fallback", false, path + ": model");
  std::string unk = string_or(model, "unk_token", "", path + ": model");
  if (!unk.empty() && t.vocab.count(unk)) t.unk_id = t.vocab.at(unk);
  int rank = 0;
  for (const Json& merge : require_field(model, "merges", path + ": model")) {
    std::string left, right;
    if (merge.is_string()) {
      std::string text = merge.get<std::string>();
      size_t space = text.find(' ', 1);
      if (space == std::string::npos) throw_bad_input(path + ": merge \"" + text + "\" is not 'a b'");
      left = text.substr(0, space), right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      left = merge[0].get<std::string>(), right = merge[1].get<std::string>();
    } else {
      throw_bad_input(path + ": merge " + describe_json(merge) + " is neither 'a b' nor [a, b]");
    }
    auto a = t.vocab.find(left), b = t.vocab.find(right), ab = t.vocab.find(left + right);
    if (a != t.vocab.end() && b != t.vocab.end() && ab != t.vocab.end()) {
      t.merges.emplace(uint64_t(a->second) << 32 | uint64_t(b->second), std::make_pair(rank, ab->second));
    }
    ++rank;
  }
  if (config.contains("added_tokens")) {
    for (const Json& added : config["added_tokens"]) {
      std::string content = require_string(added, "content", path + ": added_tokens");
      int64_t id = token_id(require_field(added, "id", path + ": added_tokens"), "added_tokens[].id", path);
      t.added[content] = id;
      t.vocab.emplace(content, id);
      if (!content.empty()) t.added_by_first_byte[static_cast<unsigned char>(content[0])].push_back(content);
    }
    for (auto& [byte, contents] : t.added_by_first_byte) {
      std::sort(contents.begin(), contents.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    }
  }
  collect_normalizers(optional_field(config, "normalizer", path), t.normalizers, path + ": normalizer");
  collect_pre_tokenizers(optional_field(config, "pre_tokenizer", path), t.pre_tokenizers, path + ": pre_tokenizer");
  t.byte_level = std::any_of(t.pre_tokenizers.begin(), t.pre_tokenizers.end(),
                             [](const PreTokenizerStep& s) { return s.kind == PreTokenizerStep::Kind::kByteLevel; });
  t.decoder = t.byte_level ? Impl::Decoder::kByteLevel : Impl::Decoder::kMetaspace;  // "▁" for spaces either way
  // GPT-2's byte alphabet: printable bytes stand for themselves, the rest for 256 + n.
  const std::vector<std::string> alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    t.byte_to_char[b] = alphabet[size_t(b)];
    t.char_to_byte[t.byte_to_char[b]] = static_cast<unsigned char>(b);
  }
  const Json& post = optional_field(config, "post_processor", path);
  if (!post.is_null()) {
    std::string post_type = require_string(post, "type", path + ": post_processor");
    if (post_type == "TemplateProcessing") {
      const Json& specials = require_field(post, "special_tokens", path + ": post_processor");
      bool after_sequence = false;
      for (const Json& item : require_field(post, "single", path + ": post_processor")) {
        if (item.contains("Sequence")) {
          after_sequence = true;
          continue;
        }
        std::string name = require_string(require_field(item, "SpecialToken", path), "id", path + ": post_processor");
        auto ids = require_field(require_field(specials, name, path + ": post_processor"), "ids", path).get<std::vector<int64_t>>();
        std::vector<int64_t>& side = after_sequence ? t.special_suffix : t.special_prefix;
        side.insert(side.end(), ids.begin(), ids.end());
      }
    } else if (post_type != "ByteLevel") {
      throw_bad_input(path + ": post_processor type \"" + post_type + "\" is not supported (supported: TemplateProcessing, ByteLevel)");
    }
  }
  std::string config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::string config_bytes;
  with_json_errors(config_path, [&] {
    apply_tokenizer_config(config_path, t.added, t.vocab, t.special_prefix, t.special_suffix, config_bytes);
  });
  // Both files decide the ids; an absent config and an empty one differ.
  t.fingerprint = sha256_hex(std::string("tokenizer.json\n") + std::to_string(tokenizer_bytes.size()) + "\n" + tokenizer_bytes +
                             "tokenizer_config.json\n" +
                             (std::filesystem::exists(config_path) ? std::to_string(config_bytes.size()) + "\n" + config_bytes : "absent"));
  int64_t max_id = 0;
  for (const auto& [token, id] : t.vocab) max_id = std::max(max_id, id);
  t.id_to_token.assign(size_t(max_id + 1), "");
  for (const auto& [token, id] : t.vocab) t.id_to_token[size_t(id)] = token;
  return tokenizer;
}

int64_t Tokenizer::vocab_size() const { return int64_t(impl_->id_to_token.size()); }
const std::string& Tokenizer::fingerprint() const { return impl_->fingerprint; }

std::vector<std::string> Tokenizer::words(const std::string& text) const {
  return impl_->pre_tokenize(impl_->normalize(text), /*first_segment=*/true);
}

std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> alphabet(256);
  for (int b = 0, n = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    alphabet[size_t(b)] = encode_utf8(printable ? uint32_t(b) : uint32_t(256 + n++));
  }
  return alphabet;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<int64_t> ids;
  // Added tokens first, leftmost-longest; the text between them goes through the pipeline.
  size_t segment = 0;
  for (size_t at = 0; at < text.size();) {
    auto candidates = t.added_by_first_byte.find(static_cast<unsigned char>(text[at]));
    const std::string* found = nullptr;
    if (candidates != t.added_by_first_byte.end()) {
      for (const std::string& content : candidates->second) {
        if (text.compare(at, content.size(), content) == 0) {
          found = &content;
          break;
        }
      }
    }
    if (!found) {
      ++at;
      continue;
    }
    if (at > segment) t.encode_segment(text.substr(segment, at - segment), segment == 0, ids);
    ids.push_back(t.added.at(*found));
    at += found->size();
    segment = at;
  }
  if (segment < text.size()) t.encode_segment(text.substr(segment), segment == 0, ids);
  if (!add_special_tokens) return ids;
  ids.insert(ids.begin(), t.special_prefix.begin(), t.special_prefix.end());
  ids.insert(ids.end(), t.special_suffix.begin(), t.special_suffix.end());
  return ids;
}

const std::vector<int64_t>& Tokenizer::special_prefix() const { return impl_->special_prefix; }
const std::vector<int64_t>& Tokenizer::special_suffix() const { return impl_->special_suffix; }

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const Impl& t = *impl_;
  std::string out;
  for (int64_t id : ids) {
    if (id < 0 || id >= int64_t(t.id_to_token.size())) throw_bad_input("token id " + std::to_string(id) + " is outside the vocabulary");
    const std::string& token = t.id_to_token[size_t(id)];
    if (t.added.count(token)) {
      out += token;
    } else if (t.decoder == Impl::Decoder::kByteLevel) {
      for (size_t i = 0; i < token.size();) {
        size_t n = utf8_length(static_cast<unsigned char>(token[i]));
        auto byte = t.char_to_byte.find(token.substr(i, n));
        out += byte == t.char_to_byte.end() ? token.substr(i, n) : std::string(1, char(byte->second));
        i += n;
      }
    } else if (token.size() == 6 && token.rfind("<0x", 0) == 0 && token[5] == '>') {
      out += char(std::stoi(token.substr(3, 2), nullptr, 16));  // byte fallback
    } else {
      for (size_t at = 0;;) {  // "▁" stands for a space
        size_t next = token.find("\xe2\x96\x81", at);
        out += token.substr(at, next == std::string::npos ? std::string::npos : next - at);
        if (next == std::string::npos) break;
        out += ' ';
        at = next + 3;
      }
    }
  }
  if (t.decoder == Impl::Decoder::kMetaspace && !out.empty() && out[0] == ' ') out.erase(0, 1);  // Strip(start 1)
  return out;
}

void check_tokenizer_fits(const Tokenizer& tokenizer, int64_t vocab_size, const std::string& where) {
  if (tokenizer.vocab_size() > vocab_size) {
    throw_bad_input(where + ": has token ids up to " + std::to_string(tokenizer.vocab_size() - 1) +
                    ", past the model's vocab_size " + std::to_string(vocab_size) + " (another model's tokenizer?)");
  }
}

}  // namespace cdmoe::model
