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

}  // namespace cdmoe
