// What every cdmoe main() shares: one-line errors and exit codes (DESIGN.md §6).
// run_cli calls `body`; a cdmoe::Error prints "PROGRAM: error: MESSAGE" and exits with its
// kind's code (2 bad input, 1 runtime), a command-line parsing error exits 2, anything else 1.
#pragma once

#include <functional>

namespace cdmoe {

int run_cli(const char* program, const std::function<int()>& body);

}  // namespace cdmoe
