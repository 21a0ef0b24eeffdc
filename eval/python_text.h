// Python's str methods as lm-evaluation-harness applies them to task text: its templates call
// strip() (MMLU's question, WinoGrande's continuation, HellaSwag's preprocess), lstrip()
// (OpenBookQA's answerKey) and capitalize() (HellaSwag's ctx_b), and _encode_pair moves what
// rstrip() removes from a context to its continuation. Python's semantics on Unicode text:
//  - whitespace is str.isspace(): general category Zs or bidirectional class WS, B or S
//    (U+0009-000D, U+001C-001F, space, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029,
//    U+202F, U+205F, U+3000), not the zero-width characters;
//  - capitalize() (Python >= 3.8) title-cases the first character and lower-cases the rest with
//    the full case mappings (SpecialCasing: "ß" -> "Ss", "ﬁ" -> "Fi", "İ" -> "i̇") and Greek
//    capital sigma as final sigma (ς) at the end of a word, as str.lower() does.
// Simple mappings come from utf8proc (the Unicode version of the system's libutf8proc), the
// multi-character ones from a table written by tests/fixtures/eval/make_python_text.py, which
// also writes the fixture every code point is tested against. Invalid UTF-8 is bad input
// naming `where`. Torch-free; thread-safe.
#pragma once

#include <string>

namespace cdmoe::eval {

std::string python_strip(const std::string& text, const std::string& where = "text");
std::string python_lstrip(const std::string& text, const std::string& where = "text");
std::string python_rstrip(const std::string& text, const std::string& where = "text");
std::string python_capitalize(const std::string& text, const std::string& where = "text");
std::string python_lower(const std::string& text, const std::string& where = "text");
bool python_isspace(char32_t code_point);

}  // namespace cdmoe::eval
