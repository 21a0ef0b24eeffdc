#include "core/names.h"

#include <cstdint>
#include <cstdio>
#include <utility>

#include "core/error.h"

namespace cdmoe {
namespace {

// The code point at text[at] and its length in bytes; length 0 for invalid UTF-8.
std::pair<uint32_t, size_t> decode(std::string_view text, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(at);
  if (first < 0x80) return {first, 1};
  size_t length = (first >> 5) == 0x6 ? 2 : (first >> 4) == 0xE ? 3 : (first >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || at + length > text.size()) return {0, 0};
  uint32_t cp = first & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(at + k) >> 6) != 0x2) return {0, 0};
    cp = (cp << 6) | (byte(at + k) & 0x3F);
  }
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, length};
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    size_t length = decode(text, at).second;
    if (length == 0) return false;
    at += length;
  }
  return true;
}

void check_printable_name(const std::string& value, const std::string& what, size_t max_bytes) {
  if (value.size() > max_bytes) {
    throw_bad_input(what + " is " + std::to_string(value.size()) + " bytes long; at most " + std::to_string(max_bytes));
  }
  for (size_t at = 0; at < value.size();) {
    auto [cp, length] = decode(value, at);
    if (length == 0) throw_bad_input(what + " is not valid UTF-8 (byte " + std::to_string(at) + ")");
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      throw_bad_input(what + " holds a control character (U+" + [cp] {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%04X", unsigned(cp));
        return std::string(hex);
      }() + " at byte " + std::to_string(at) + ")");
    }
    at += length;
  }
}

}  // namespace cdmoe
