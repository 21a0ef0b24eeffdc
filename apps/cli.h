// What every cdmoe main() shares: one-line errors and exit codes (ARCHITECTURE.md §6).
// run_cli calls `body`; a cdmoe::Error prints "PROGRAM: error: MESSAGE" and exits with its
// kind's code (2 bad input, 1 runtime), a command-line parsing error exits 2, anything else 1.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "eval/speed_options.h"

namespace cdmoe {

int run_cli(const char* program, const std::function<int()>& body);

// Parses argv against `options` (plus, when `with_command`, one positional argument stored as
// "command"). Prints the options and returns nullopt for --help. When `options` has "config"
// and it is given, that file (INI style: `name = value` a line, the long option names) supplies
// the options the command line does not.
std::optional<boost::program_options::variables_map> parse_options(
    int argc, char** argv, const boost::program_options::options_description& options, bool with_command);

// Writes `contents` to `path` as core/atomic_file.h does (complete or absent, durable), after
// check_output_path: a directory that is missing or unwritable is bad input naming `option`
// (e.g. "--out") and the path.
void write_file_atomically(const std::string& path, const std::string& contents, const std::string& option);
// The checks write_file_atomically makes before writing, for a command to make them before its
// work: `path` is not a directory and its directory exists.
void check_output_path(const std::string& path, const std::string& option);

// The speed metric's flags (--speed-repeats, --speed-ci, --speed-max-s, --speed-workload),
// parsed into `speed` (which must outlive the parse) with its values as defaults; check them
// with speed.validate().
void add_speed_options(boost::program_options::options_description& options, eval::SpeedOptions& speed);

// A real number a user typed for `option` (e.g. "--lr"): bad input naming the option unless it is
// finite and within [low, high], or (low, high] when `exclude_low` (inf, nan and 1e300 are
// refused before anything runs).
double checked_number(double value, const std::string& option, double low, double high, bool exclude_low = false);

// A count a user typed for `option`: bad input naming it unless within [low, high].
int64_t checked_count(int64_t value, const std::string& option, int64_t low, int64_t high);
// The largest --cache-mb any command accepts (16 TiB: the byte count stays far inside int64).
inline constexpr int64_t kMaxCacheMb = int64_t(1) << 24;

// "a, b,,c" -> {"a", "b", "c"} (core/split.h, empty parts dropped).
std::vector<std::string> split_commas(const std::string& text);

}  // namespace cdmoe
