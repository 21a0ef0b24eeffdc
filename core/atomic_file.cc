#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/host_name.h"

namespace cdmoe {
namespace {

namespace fs = std::filesystem;

std::string temporary_prefix(const fs::path& target) { return target.filename().string() + ".tmp-" + host_name() + "-"; }

// The directory entry of a rename is only durable once the directory itself is synced.
void sync_directory(const fs::path& directory) {
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems refuse to open a directory for syncing
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string temporary_path(const std::string& path) {
  fs::path target = fs::absolute(path);
  return (target.parent_path() / (temporary_prefix(target) + std::to_string(getpid()))).string();
}

int remove_stale_temporaries(const std::string& path) {
  fs::path target = fs::absolute(path);
  const std::string prefix = temporary_prefix(target);
  int removed = 0;
  std::error_code error;
  for (fs::directory_iterator it(target.parent_path(), error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t pid = pid_t(std::stol(pid_text));
    if (pid == getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code ignored;
    if (fs::remove_all(it->path(), ignored) > 0) ++removed;
  }
  return removed;
}

void write_file_atomically(const std::string& path, const std::function<bool(std::FILE*)>& write) {
  fs::path target = fs::absolute(path);
  remove_stale_temporaries(path);
  const std::string temporary = temporary_path(path);
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (!file) throw_bad_input(path + ": cannot write in '" + target.parent_path().string() + "' (" + std::strerror(errno) + ")");
  bool ok = false;
  try {
    ok = write(file);
  } catch (...) {  // a writer that refuses midway (its input was bad) leaves nothing behind either
    std::fclose(file);
    std::remove(temporary.c_str());
    throw;
  }
  ok = std::fflush(file) == 0 && ok;
  ok = ::fsync(fileno(file)) == 0 && ok;
  const int write_errno = errno;
  ok = std::fclose(file) == 0 && ok;
  if (!ok || std::rename(temporary.c_str(), target.c_str()) != 0) {
    const int saved = ok ? errno : write_errno;
    std::remove(temporary.c_str());
    throw_runtime(path + ": writing failed (" + std::string(std::strerror(saved)) + "; disk full?)");
  }
  sync_directory(target.parent_path());
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  write_file_atomically(path, [&](std::FILE* file) { return std::fwrite(contents.data(), 1, contents.size(), file) == contents.size(); });
}

}  // namespace cdmoe
