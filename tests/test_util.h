// Helpers shared by the test suites: temporary directories and running real binaries.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cdmoe::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // 128 + signal number when killed by a signal
  std::string out;
  std::string err;
  int64_t peak_rss_bytes = 0;  // the command's own process (not its children), from wait4
};

// Runs argv (argv[0] a path) to completion with stdin from /dev/null, capturing its output.
CommandResult run_command(const std::vector<std::string>& argv);

// A command running in the background in a process group of its own (so a signal can reach
// the whole job, mpirun and its ranks), its output captured to files.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv);
  ~BackgroundCommand();  // SIGKILLs the group if still running
  int pid() const { return pid_; }
  void signal_group(int signal);  // e.g. SIGKILL to the whole job
  void signal_leader(int signal);
  CommandResult wait();

 private:
  TempDir scratch_;
  int pid_ = -1;
  bool reaped_ = false;
};

// Polls `reached` every 50 ms until it is true (returns true) or `timeout_s` have passed
// (returns false): tests assert on the result rather than going on after a timeout.
[[nodiscard]] bool wait_until(double timeout_s, const std::function<bool()>& reached);

std::string read_file(const std::string& path);

// The golden model fixtures under tests/fixtures/model/ (make_golden.py's CASES), for the tests
// that run over every family's checkpoints.
inline const std::vector<std::string> kGoldenModelFixtures = {
    "deepseek_gqa",       "deepseek_tied_bf16",  "qwen_sharded",         "qwen_tied_f16",
    "qwen3_head_dim",     "qwen3_v5_bias_bf16",  "mixtral_head_dim",     "mixtral_defaults_f16",
    "olmoe_clip",         "olmoe_bias_bf16",     "deepseek_v3_groups",   "deepseek_v3_plain_bf16",
    "deepseek_v2_lite_groups", "deepseek_v2_lora_bf16", "deepseek_v3_fp8", "glm4_partial_rope", "glm4_qk_norm_bf16"};
void write_file(const std::string& path, const std::string& contents);
// Number of lines in text (a last line without '\n' counts).
int count_lines(const std::string& text);

}  // namespace cdmoe::testing
