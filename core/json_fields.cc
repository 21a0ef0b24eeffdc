#include "core/json_fields.h"

#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe {
namespace {

void require_object(const Json& object, const std::string& where) {
  if (!object.is_object()) throw_bad_input(where + ": expected a JSON object, got " + describe_json(object));
}

[[noreturn]] void wrong_type(const std::string& where, const std::string& key, const char* wanted,
                             const Json& got) {
  throw_bad_input(where + ": field '" + key + "' must be " + wanted + ", got " + describe_json(got));
}

int64_t as_int(const Json& value, const std::string& key, const std::string& where) {
  // An unsigned value past 2^63 - 1 would wrap into a negative one.
  if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)) {
    wrong_type(where, key, "an integer below 2^63", value);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  // 2048.0 is an integer in every sense a config means; 2048.5 is not (nor 1e19, past int64).
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (d >= -0x1p63 && d < 0x1p63 && d == double(int64_t(d))) return int64_t(d);
  }
  wrong_type(where, key, "an integer", value);
}

double as_number(const Json& value, const std::string& key, const std::string& where) {
  if (!value.is_number()) wrong_type(where, key, "a number", value);
  return value.get<double>();
}

}  // namespace

Json parse_json_text(std::string_view text, const std::string& where) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    throw_bad_input(where + ": not valid JSON (" + e.what() + ")");
  }
}

void for_each_json_line(const std::string& text, const std::string& path,
                        const std::function<bool(const Json& object, const std::string& where)>& visit) {
  std::istringstream in(text);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = path + ":" + std::to_string(number);
    Json object = parse_json_text(line, where);
    if (!object.is_object()) throw_bad_input(where + ": expected a JSON object");
    if (!visit(object, where)) return;
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_bad_input("cannot read '" + path + "': no such file or not readable");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw_bad_input("cannot read '" + path + "': read error");
  return contents.str();
}

Json read_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

const Json& require_field(const Json& object, const std::string& key, const std::string& where) {
  require_object(object, where);
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) throw_bad_input(where + ": missing required field '" + key + "'");
  return *it;
}

int64_t require_int(const Json& object, const std::string& key, const std::string& where) {
  return as_int(require_field(object, key, where), key, where);
}

double require_number(const Json& object, const std::string& key, const std::string& where) {
  return as_number(require_field(object, key, where), key, where);
}

std::string require_string(const Json& object, const std::string& key, const std::string& where) {
  const Json& value = require_field(object, key, where);
  if (!value.is_string()) wrong_type(where, key, "a string", value);
  return value.get<std::string>();
}

const Json& optional_field(const Json& object, const std::string& key, const std::string& where) {
  static const Json kNull;
  require_object(object, where);
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

int64_t int_or(const Json& object, const std::string& key, int64_t fallback, const std::string& where) {
  require_object(object, where);
  auto it = object.find(key);
  return (it == object.end() || it->is_null()) ? fallback : as_int(*it, key, where);
}

double number_or(const Json& object, const std::string& key, double fallback, const std::string& where) {
  require_object(object, where);
  auto it = object.find(key);
  return (it == object.end() || it->is_null()) ? fallback : as_number(*it, key, where);
}

bool bool_or(const Json& object, const std::string& key, bool fallback, const std::string& where) {
  require_object(object, where);
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) wrong_type(where, key, "true or false", *it);
  return it->get<bool>();
}

std::string string_or(const Json& object, const std::string& key, const std::string& fallback,
                      const std::string& where) {
  require_object(object, where);
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_string()) wrong_type(where, key, "a string", *it);
  return it->get<std::string>();
}

void rethrow_json_error(const std::string& where, const std::exception& e) {
  if (!dynamic_cast<const Json::exception*>(&e)) throw;
  // nlohmann's text is "[json.exception.type_error.302] (/json/path) message" with
  // JSON_DIAGNOSTICS (set for the whole project in CMakeLists.txt): keep the path and message.
  std::string text = e.what();
  if (size_t bracket = text.find("] "); text.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos) {
    text = text.substr(bracket + 2);
  }
  if (text.size() > 1 && text[0] == '(') {
    if (size_t close = text.find(") "); close != std::string::npos) {
      std::string path = text.substr(1, close - 1);
      text = "at " + (path.empty() ? std::string("/") : path) + ": " + text.substr(close + 2);
    }
  }
  throw_bad_input(where + ": " + text);
}

std::string describe_json(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

}  // namespace cdmoe
