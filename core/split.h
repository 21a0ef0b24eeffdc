// Lists a user types: "layers:1,2;memory:0.7", "cdmoe,drop", "piqa, arc_easy". Torch-free.
#pragma once

#include <string>
#include <vector>

namespace cdmoe {

// The parts of `text` between any of `separators`, each without surrounding spaces and tabs,
// empty parts kept (the caller decides whether "a,,b" is an error): "a, b" -> {"a", "b"},
// "" -> {""}.
std::vector<std::string> split_trimmed(const std::string& text, const std::string& separators);

}  // namespace cdmoe
