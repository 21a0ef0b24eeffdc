#include "core/split.h"

namespace cdmoe {

std::vector<std::string> split_trimmed(const std::string& text, const std::string& separators) {
  auto trim = [](const std::string& part) {
    size_t first = part.find_first_not_of(" \t");
    return first == std::string::npos ? std::string() : part.substr(first, part.find_last_not_of(" \t") - first + 1);
  };
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (separators.find(c) != std::string::npos) {
      parts.push_back(trim(current));
      current.clear();
    } else {
      current += c;
    }
  }
  parts.push_back(trim(current));
  return parts;
}

}  // namespace cdmoe
