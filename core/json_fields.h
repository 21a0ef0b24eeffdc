// Strict readers for JSON documents the user hands us (config.json, plans, sweep configs).
// Every error is a bad-input Error whose message names `where` (a file or a field path) and
// the key, e.g. "config.json: field 'hidden_size' must be an integer, got \"2048\"".
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace cdmoe {

using Json = nlohmann::json;

// Parses text as JSON; syntax errors name `where` and the byte offset.
Json parse_json_text(std::string_view text, const std::string& where);
// Reads and parses a whole file; a missing/unreadable file is bad input naming the path.
Json read_json_file(const std::string& path);
// Reads a whole file as bytes; a missing/unreadable file is bad input naming the path.
std::string read_text_file(const std::string& path);

// JSON lines: calls `visit(object, where)` for each non-blank line of `text` in order, `where`
// being "path:N" (N from 1); a line that is not a JSON object is bad input naming it. `visit`
// returns false to stop there.
void for_each_json_line(const std::string& text, const std::string& path,
                        const std::function<bool(const Json& object, const std::string& where)>& visit);

// `object` must be a JSON object (checked) holding `key`.
const Json& require_field(const Json& object, const std::string& key, const std::string& where);
int64_t require_int(const Json& object, const std::string& key, const std::string& where);
double require_number(const Json& object, const std::string& key, const std::string& where);
std::string require_string(const Json& object, const std::string& key, const std::string& where);

// The member `key` of `object` (checked to be an object), or a null value when it is absent. A
// reference into the document, so JSON paths in later errors stay whole (unlike a copy).
const Json& optional_field(const Json& object, const std::string& key, const std::string& where);

// Optional fields: the default when absent or null; a present value of the wrong type is an error.
int64_t int_or(const Json& object, const std::string& key, int64_t fallback, const std::string& where);
double number_or(const Json& object, const std::string& key, double fallback, const std::string& where);
bool bool_or(const Json& object, const std::string& key, bool fallback, const std::string& where);
std::string string_or(const Json& object, const std::string& key, const std::string& fallback,
                      const std::string& where);

// Inside a catch handler of `e`: bad input as above when `e` is a JSON access error, else rethrows.
[[noreturn]] void rethrow_json_error(const std::string& where, const std::exception& e);
// Runs `read` (code that walks a parsed document of `where`), turning a JSON access error that
// escapes it (a value of the wrong type or a missing key where the reader did not check first)
// into bad input naming `where` and the value's JSON path, e.g. "tokenizer.json: at
// /model/vocab/a: type must be number, but is string". Other exceptions pass unchanged.
template <class Read>
auto with_json_errors(const std::string& where, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const std::exception& e) {
    rethrow_json_error(where, e);
  }
}

// Short human rendering of a JSON value for error messages (truncated to ~60 characters).
std::string describe_json(const Json& value);

}  // namespace cdmoe
