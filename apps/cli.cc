#include "apps/cli.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/split.h"

namespace cdmoe {

int run_cli(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const boost::program_options::error& e) {
    std::cerr << program << ": error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

namespace {

std::string trimmed(const std::string& text) {
  size_t first = text.find_first_not_of(" \t\r"), last = text.find_last_not_of(" \t\r");
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// A config file as Boost should read it. Boost counts a switch (an option that takes no value)
// as given whatever its value says, so "no-finetune-control = false" turned the control off:
// here a switch's line is kept for true, dropped for false and refused for anything else. A
// config file naming another one ("config = other.ini") was silently ignored: refused.
std::string config_file_for_boost(std::istream& file, const boost::program_options::options_description& options,
                                  const std::string& path) {
  std::string out, line;
  for (int number = 1; std::getline(file, line); ++number) {
    const std::string where = path + ":" + std::to_string(number);
    const std::string content = trimmed(line);
    const size_t equals = content.find('=');
    if (content.empty() || content[0] == '#' || content[0] == '[' || equals == std::string::npos) {
      out += line + "\n";
      continue;
    }
    const std::string key = trimmed(content.substr(0, equals)), value = trimmed(content.substr(equals + 1));
    if (key == "config") throw_bad_input(where + ": a --config file cannot name another one (config = " + value + ")");
    const auto* option = options.find_nothrow(key, false);
    if (!option || option->semantic()->max_tokens() != 0) {
      out += line + "\n";
      continue;
    }
    if (value == "true" || value == "1" || value == "yes" || value == "on" || value.empty()) {
      out += key + " = true\n";
    } else if (value != "false" && value != "0" && value != "no" && value != "off") {
      throw_bad_input(where + ": " + key + " is a switch: true or false, got \"" + value + "\"");
    }
  }
  return out;
}

}  // namespace

std::optional<boost::program_options::variables_map> parse_options(
    int argc, char** argv, const boost::program_options::options_description& options, bool with_command) {
  namespace po = boost::program_options;
  po::options_description all;
  all.add(options);
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>());
  po::positional_options_description positional;
  if (with_command) {
    all.add(hidden);
    positional.add("command", 1);
  }
  po::variables_map args;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), args);
  if (options.find_nothrow("config", false) && args.count("config")) {
    std::string path = args["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw_bad_input(path + ": cannot read the --config file");
    std::istringstream text(config_file_for_boost(file, options, path));
    try {
      po::store(po::parse_config_file(text, options), args);  // the command line wins: stored first
    } catch (const po::error& e) {
      throw_bad_input(path + ": " + e.what());
    }
  }
  po::notify(args);
  if (args.count("help")) {
    std::cout << options << "\n";
    return std::nullopt;
  }
  return args;
}

double checked_number(double value, const std::string& option, double low, double high, bool exclude_low) {
  const bool inside = std::isfinite(value) && (exclude_low ? value > low : value >= low) && value <= high;
  if (!inside) {
    std::ostringstream text;
    text << option << " must be a finite number in " << (exclude_low ? "(" : "[") << low << ", " << high << "], got " << value;
    throw_bad_input(text.str());
  }
  return value;
}

int64_t checked_count(int64_t value, const std::string& option, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw_bad_input(option + " must lie in " + std::to_string(low) + ".." + std::to_string(high) + ", got " + std::to_string(value));
  }
  return value;
}

void check_output_path(const std::string& path, const std::string& option) {
  namespace fs = std::filesystem;
  fs::path target = fs::absolute(path);
  if (fs::is_directory(target)) throw_bad_input(option + " '" + path + "' is a directory");
  fs::path parent = target.parent_path();
  if (!fs::is_directory(parent)) throw_bad_input(option + " '" + path + "': directory '" + parent.string() + "' does not exist");
}

void write_file_atomically(const std::string& path, const std::string& contents, const std::string& option) {
  check_output_path(path, option);
  cdmoe::write_file_atomically(path, std::string_view(contents));
}

void add_speed_options(boost::program_options::options_description& options, eval::SpeedOptions& speed) {
  namespace po = boost::program_options;
  options.add_options()
      ("speed-repeats", po::value(&speed.min_pairs)->default_value(speed.min_pairs),
       "timing pairs (original, plan) at least, per speed-up")
      ("speed-ci", po::value(&speed.target)->default_value(speed.target),
       "then more pairs until the speed-up's 95% interval is within +-this fraction")
      ("speed-max-s", po::value(&speed.max_seconds)->default_value(speed.max_seconds),
       "or until this many seconds of timing, per speed-up")
      ("speed-workload", po::value(&speed.workload)->default_value(speed.workload),
       "calibration (the calibration batch) or prefill-2000 (the paper's: one 2,000-token sequence, batch 1)");
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  for (std::string& part : split_trimmed(text, ",")) {
    if (!part.empty()) parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace cdmoe
