#include "apps/cli.h"

#include <iostream>

#include <boost/program_options/errors.hpp>

#include "core/error.h"

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
  po::notify(args);
  if (args.count("help")) {
    std::cout << options << "\n";
    return std::nullopt;
  }
  return args;
}

}  // namespace cdmoe
