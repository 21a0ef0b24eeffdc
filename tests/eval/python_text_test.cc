// Python's str methods as lm-evaluation-harness applies them, against Python itself
// (tests/fixtures/eval/make_python_text.py): every code point's lower() and capitalize(), every
// whitespace character, the final-sigma context of every code point, and sample strings.
#include "eval/python_text.h"

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"

namespace cdmoe::eval {
namespace {

Json fixture() { return read_json_file(std::string(CDMOE_TEST_FIXTURES) + "/eval/python_text.json"); }

std::string utf8(const std::vector<char32_t>& code_points) {
  std::string out;
  for (char32_t c : code_points) {
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
    } else {
      out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F)), out += char(0x80 | ((c >> 6) & 0x3F)),
          out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Membership of every code point in a fixture's list of [first, last] ranges.
std::vector<bool> code_point_set(const Json& ranges) {
  std::vector<bool> set(0x110000, false);
  for (const Json& r : ranges) {
    for (char32_t c = r[0].get<char32_t>(); c <= r[1].get<char32_t>(); ++c) set[c] = true;
  }
  return set;
}

// Every Unicode scalar value.
template <typename F>
void for_every_code_point(F&& f) {
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c < 0xD800 || c > 0xDFFF) f(c);
  }
}

TEST(PythonText, EveryCodePointCasesAsPythonDoes) {
  Json f = fixture();
  std::unordered_map<char32_t, std::pair<std::string, std::string>> changed;  // lower, capitalize
  for (const Json& entry : f["changed"]) {
    changed[entry[0].get<char32_t>()] = {utf8(entry[1].get<std::vector<char32_t>>()), utf8(entry[2].get<std::vector<char32_t>>())};
  }
  ASSERT_GT(changed.size(), 2500u);
  int mismatches = 0;
  for_every_code_point([&](char32_t c) {
    const std::string text = utf8({c});
    auto it = changed.find(c);
    const std::string lower = it == changed.end() ? text : it->second.first;
    const std::string capitalized = it == changed.end() ? text : it->second.second;
    if (python_lower(text) != lower || python_capitalize(text) != capitalized) {
      if (++mismatches <= 10) ADD_FAILURE() << "U+" << std::hex << uint32_t(c) << ": lower or capitalize differs from Python's";
    }
  });
  EXPECT_EQ(mismatches, 0) << "of " << changed.size() << " cased code points (Python's Unicode " << f["unicode"] << ")";
}

TEST(PythonText, WhitespaceIsPythonsIsspace) {
  Json f = fixture();
  std::vector<char32_t> spaces = f["space"].get<std::vector<char32_t>>();
  ASSERT_EQ(spaces.size(), 29u);
  for_every_code_point([&](char32_t c) {
    const bool space = std::find(spaces.begin(), spaces.end(), c) != spaces.end();
    ASSERT_EQ(python_isspace(c), space) << "U+" << std::hex << uint32_t(c);
  });
}

// lower() of "AΣ" + c and "AΣ" + c + "B": the sigma is final in the first unless c is cased and
// not case-ignorable, in the second only when c is neither (the fixture's two sets, read off
// Python's own lower()), for every code point assigned in the fixture's Unicode version.
TEST(PythonText, FinalSigmaContextOfEveryCodePoint) {
  Json f = fixture();
  const std::string final_sigma = "\u03c2";
  const std::vector<bool> unassigned = code_point_set(f["unassigned"]), ignorables = code_point_set(f["sigma_ignorable"]),
                          cased_letters = code_point_set(f["sigma_cased"]);
  int mismatches = 0;
  for_every_code_point([&](char32_t c) {
    if (unassigned[c]) return;  // assigned in a later Unicode than the fixture's Python knows
    const bool ignorable = ignorables[c];
    const bool cased = !ignorable && cased_letters[c];
    const std::string at_end = python_lower(utf8({U'A', 0x03A3, c}));
    const std::string before_letter = python_lower(utf8({U'A', 0x03A3, c, U'B'}));
    const bool final_at_end = at_end.compare(1, final_sigma.size(), final_sigma) == 0;
    const bool final_before_letter = before_letter.compare(1, final_sigma.size(), final_sigma) == 0;
    if (final_at_end != (ignorable || !cased) || final_before_letter != (!ignorable && !cased)) {
      if (++mismatches <= 10) ADD_FAILURE() << "U+" << std::hex << uint32_t(c) << ": final sigma decided unlike Python";
    }
  });
  EXPECT_EQ(mismatches, 0);
}

TEST(PythonText, SampleStringsAsPython) {
  for (const Json& c : fixture()["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(python_strip(text), c["strip"].get<std::string>()) << text;
    EXPECT_EQ(python_lstrip(text), c["lstrip"].get<std::string>()) << text;
    EXPECT_EQ(python_rstrip(text), c["rstrip"].get<std::string>()) << text;
    EXPECT_EQ(python_capitalize(text), c["capitalize"].get<std::string>()) << text;
    EXPECT_EQ(python_lower(text), c["lower"].get<std::string>()) << text;
  }
}

TEST(PythonText, InvalidUtf8IsBadInputNamingWhere) {
  try {
    python_strip("ok \xff", "mmlu_test/x.csv:3: question");
    FAIL() << "accepted invalid UTF-8";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("mmlu_test/x.csv:3: question is not valid UTF-8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cdmoe::eval
