// What a name stored in the results database may hold (sweep names, methods, budgets, stages):
// it is typed into SQL, printed in one-line messages and written into HTML and SVG, so it must
// be valid UTF-8 without control characters (C0, DEL, C1: a NUL or an ESC would break XML, a
// newline the one-line messages) and of bounded length. Torch-free.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cdmoe {

// Whether `text` is valid UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Bad input naming `what` unless `value` is valid UTF-8 without control characters and at most
// `max_bytes` long.
void check_printable_name(const std::string& value, const std::string& what, size_t max_bytes = 200);

}  // namespace cdmoe
