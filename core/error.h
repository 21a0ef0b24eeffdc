// The one exception type of cdmoe (ARCHITECTURE.md §6). Its message names the file/field/value at
// fault and reads as a complete sentence after "cdmoe-X: error: ". main() maps the kind to the
// process exit code: 2 for bad input or usage, 1 for a failure at run time.
#pragma once

#include <stdexcept>
#include <string>

namespace cdmoe {

enum class ErrorKind {
  kBadInput,  // the user's files, options or data are wrong: exit 2
  kRuntime,   // the inputs were fine but something failed while running: exit 1
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return kind_ == ErrorKind::kBadInput ? 2 : 1; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void throw_bad_input(const std::string& message) {
  throw Error(ErrorKind::kBadInput, message);
}
[[noreturn]] inline void throw_runtime(const std::string& message) {
  throw Error(ErrorKind::kRuntime, message);
}

}  // namespace cdmoe
