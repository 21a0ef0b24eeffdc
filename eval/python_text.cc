#include "eval/python_text.h"

#include <algorithm>
#include <vector>

#include <utf8proc.h>

#include "core/error.h"

namespace cdmoe::eval {
namespace {

struct FullMapping {
  char32_t from;
  std::vector<char32_t> to;
};

// Python's multi-character case mappings (SpecialCasing.txt's unconditional entries), as
// tests/fixtures/eval/make_python_text.py prints them; every other code point maps to one.
const std::vector<FullMapping>& title_mappings() {
  static const std::vector<FullMapping> table = {
      {0x00DF, {0x0053, 0x0073}}, {0x0149, {0x02BC, 0x004E}}, {0x01F0, {0x004A, 0x030C}},
      {0x0390, {0x0399, 0x0308, 0x0301}}, {0x03B0, {0x03A5, 0x0308, 0x0301}}, {0x0587, {0x0535, 0x0582}},
      {0x1E96, {0x0048, 0x0331}}, {0x1E97, {0x0054, 0x0308}}, {0x1E98, {0x0057, 0x030A}},
      {0x1E99, {0x0059, 0x030A}}, {0x1E9A, {0x0041, 0x02BE}}, {0x1F50, {0x03A5, 0x0313}},
      {0x1F52, {0x03A5, 0x0313, 0x0300}}, {0x1F54, {0x03A5, 0x0313, 0x0301}}, {0x1F56, {0x03A5, 0x0313, 0x0342}},
      {0x1FB2, {0x1FBA, 0x0345}}, {0x1FB4, {0x0386, 0x0345}}, {0x1FB6, {0x0391, 0x0342}},
      {0x1FB7, {0x0391, 0x0342, 0x0345}}, {0x1FC2, {0x1FCA, 0x0345}}, {0x1FC4, {0x0389, 0x0345}},
      {0x1FC6, {0x0397, 0x0342}}, {0x1FC7, {0x0397, 0x0342, 0x0345}}, {0x1FD2, {0x0399, 0x0308, 0x0300}},
      {0x1FD3, {0x0399, 0x0308, 0x0301}}, {0x1FD6, {0x0399, 0x0342}}, {0x1FD7, {0x0399, 0x0308, 0x0342}},
      {0x1FE2, {0x03A5, 0x0308, 0x0300}}, {0x1FE3, {0x03A5, 0x0308, 0x0301}}, {0x1FE4, {0x03A1, 0x0313}},
      {0x1FE6, {0x03A5, 0x0342}}, {0x1FE7, {0x03A5, 0x0308, 0x0342}}, {0x1FF2, {0x1FFA, 0x0345}},
      {0x1FF4, {0x038F, 0x0345}}, {0x1FF6, {0x03A9, 0x0342}}, {0x1FF7, {0x03A9, 0x0342, 0x0345}},
      {0xFB00, {0x0046, 0x0066}}, {0xFB01, {0x0046, 0x0069}}, {0xFB02, {0x0046, 0x006C}},
      {0xFB03, {0x0046, 0x0066, 0x0069}}, {0xFB04, {0x0046, 0x0066, 0x006C}}, {0xFB05, {0x0053, 0x0074}},
      {0xFB06, {0x0053, 0x0074}}, {0xFB13, {0x0544, 0x0576}}, {0xFB14, {0x0544, 0x0565}},
      {0xFB15, {0x0544, 0x056B}}, {0xFB16, {0x054E, 0x0576}}, {0xFB17, {0x0544, 0x056D}},
  };
  return table;
}

constexpr char32_t kCapitalSigma = 0x03A3, kSmallSigma = 0x03C3, kFinalSigma = 0x03C2;
constexpr char32_t kCapitalIWithDot = 0x0130;

std::u32string decode(const std::string& text, const std::string& where) {
  std::u32string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (size_t at = 0; at < text.size();) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t used = utf8proc_iterate(bytes + at, utf8proc_ssize_t(text.size() - at), &cp);
    if (used <= 0) throw_bad_input(where + " is not valid UTF-8 (byte " + std::to_string(at) + ")");
    out.push_back(char32_t(cp));
    at += size_t(used);
  }
  return out;
}

std::string encode(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  utf8proc_uint8_t buffer[4];
  for (char32_t cp : text) out.append(reinterpret_cast<const char*>(buffer), size_t(utf8proc_encode_char(utf8proc_int32_t(cp), buffer)));
  return out;
}

// DerivedCoreProperties' Case_Ignorable: Word_Break MidLetter, MidNumLet or Single_Quote, or
// general category Mn, Me, Cf, Lm or Sk.
bool case_ignorable(char32_t c) {
  switch (c) {
    case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x055F: case 0x05F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      break;
  }
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      return false;
  }
}

// DerivedCoreProperties' Cased (what decides final sigma): Lu, Ll, Lt, and the Other_Lowercase /
// Other_Uppercase characters, which all have a case mapping except the two ordinal indicators
// and the squared, negative circled and negative squared Latin capitals (the Lm ones among them
// are case-ignorable first, so never asked about).
bool cased(char32_t c) {
  if (c == 0x00AA || c == 0x00BA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189)) {
    return true;
  }
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
      return true;
    default:
      break;
  }
  const auto cp = utf8proc_int32_t(c);
  return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp || utf8proc_totitle(cp) != cp;
}

// Unicode's Final_Sigma condition, as str.lower() applies it to text[i] == Σ: a cased letter
// before it and none after it, case-ignorable characters skipped both ways.
bool final_sigma(const std::u32string& text, size_t i) {
  size_t j = i;
  while (j > 0 && case_ignorable(text[j - 1])) --j;
  if (j == 0 || !cased(text[j - 1])) return false;
  size_t k = i + 1;
  while (k < text.size() && case_ignorable(text[k])) ++k;
  return k == text.size() || !cased(text[k]);
}

void append_lower(const std::u32string& text, size_t i, std::u32string& out) {
  const char32_t c = text[i];
  if (c == kCapitalSigma) {
    out.push_back(final_sigma(text, i) ? kFinalSigma : kSmallSigma);
  } else if (c == kCapitalIWithDot) {
    out.append({0x0069, 0x0307});
  } else {
    out.push_back(char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
  }
}

void append_title(char32_t c, std::u32string& out) {
  const auto& table = title_mappings();
  auto found = std::lower_bound(table.begin(), table.end(), c, [](const FullMapping& m, char32_t key) { return m.from < key; });
  if (found != table.end() && found->from == c) {
    out.append(found->to.begin(), found->to.end());
  } else {
    out.push_back(char32_t(utf8proc_totitle(utf8proc_int32_t(c))));
  }
}

enum Sides { kLeft = 1, kRight = 2 };

std::string strip(const std::string& text, int sides, const std::string& where) {
  std::u32string points = decode(text, where);
  size_t first = 0, last = points.size();
  if (sides & kLeft) {
    while (first < last && python_isspace(points[first])) ++first;
  }
  if (sides & kRight) {
    while (last > first && python_isspace(points[last - 1])) --last;
  }
  return encode(points.substr(first, last - first));
}

}  // namespace

bool python_isspace(char32_t c) {
  if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680) return true;
  if (c >= 0x2000 && c <= 0x200A) return true;
  return c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string python_strip(const std::string& text, const std::string& where) { return strip(text, kLeft | kRight, where); }
std::string python_lstrip(const std::string& text, const std::string& where) { return strip(text, kLeft, where); }
std::string python_rstrip(const std::string& text, const std::string& where) { return strip(text, kRight, where); }

std::string python_lower(const std::string& text, const std::string& where) {
  std::u32string points = decode(text, where), out;
  out.reserve(points.size());
  for (size_t i = 0; i < points.size(); ++i) append_lower(points, i, out);
  return encode(out);
}

std::string python_capitalize(const std::string& text, const std::string& where) {
  std::u32string points = decode(text, where), out;
  out.reserve(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    if (i == 0) append_title(points[0], out);
    else append_lower(points, i, out);
  }
  return encode(out);
}

}  // namespace cdmoe::eval
