// The one atomic writer (core/atomic_file.h): complete or absent, temporaries of writers killed
// on this host removed at the next write, a live writer's and another host's left alone, and a
// failed write leaves the old file and no temporary.
#include "core/atomic_file.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/test_util.h"

namespace cdmoe {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A process id that no process has now: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

TEST(AtomicFile, WritesWholeAndCleansTheTemporariesOfDeadWritersOnly) {
  testing::TempDir dir;
  const std::string path = dir.file("state.safetensors");
  write_file_atomically(path, std::string_view("first"));
  EXPECT_EQ(testing::read_file(path), "first");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"state.safetensors"});

  // What SIGKILLed writers leave: this host's dead one (a file, and a staging folder), a live
  // one (the parent of this test), and another host's.
  const std::string mine = temporary_path(path);
  const std::string prefix = mine.substr(0, mine.rfind('-') + 1);
  const std::string dead = prefix + std::to_string(dead_pid()), dead_dir = prefix + std::to_string(dead_pid());
  const std::string live = prefix + std::to_string(getppid());
  const std::string other_host = dir.file("state.safetensors.tmp-elsewhere-1");
  testing::write_file(dead, "torn");
  fs::create_directory(dead_dir);
  testing::write_file(dead_dir + "/model.safetensors", "torn");
  testing::write_file(live, "being written");
  testing::write_file(other_host, "another host's");
  write_file_atomically(path, std::string_view("second"));
  EXPECT_EQ(testing::read_file(path), "second");
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(dead_dir));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other_host));
  EXPECT_EQ(remove_stale_temporaries(path), 0) << "nothing stale left";
}

TEST(AtomicFile, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  testing::TempDir dir;
  const std::string path = dir.file("run.json");
  write_file_atomically(path, std::string_view("old"));
  try {
    write_file_atomically(path, [](std::FILE* file) { return std::fputs("half", file) >= 0 && false; });
    FAIL() << "a failed write was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find(path + ": writing failed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(testing::read_file(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"run.json"});
  try {
    write_file_atomically(dir.file("no/such/dir/file"), std::string_view("x"));
    FAIL() << "wrote into a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("cannot write in"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cdmoe
