// A writer killed with SIGKILL mid-stream, many times over the same file: after each kill the
// database passes PRAGMA integrity_check, every result whose commit returned is there with all
// its metrics, and no DONE candidate has a partial set of metrics.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "db/database.h"
#include "tests/test_util.h"

namespace cdmoe::db {
namespace {

struct Killed {
  std::string stdout_text;
  int status = 0;
};

// Starts crash_writer and kills it with SIGKILL `delay` after it starts or, when
// `after_ready`, after it reports its database open (so a loaded machine's slow start cannot
// push every kill before the first write). Returns all it printed.
Killed run_and_kill(const std::string& db_path, std::chrono::microseconds delay, bool after_ready) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::string binary = std::string(CDMOE_BIN_DIR) + "/crash_writer";
    execl(binary.c_str(), binary.c_str(), db_path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  Killed killed;
  char buffer[4096];
  ssize_t n;
  while (after_ready && killed.stdout_text.find("ready\n") == std::string::npos &&
         (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) {
    killed.stdout_text.append(buffer, size_t(n));
  }
  std::this_thread::sleep_for(delay);
  kill(pid, SIGKILL);
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) killed.stdout_text.append(buffer, size_t(n));
  close(pipe_fds[0]);
  waitpid(pid, &killed.status, 0);
  return killed;
}

TEST(CrashSafety, SigkillDuringWritesLosesNoCommittedResult) {
  testing::TempDir dir;
  std::string path = dir.file("crash.db");
  std::mt19937 rng(20261124);
  std::set<int64_t> committed;
  int killed_while_writing = 0;
  for (int run = 0; run < 30; ++run) {
    // One run in three is killed at a random time from its start (opening, migrating or
    // writing); the others 5-50 ms into their write stream.
    bool after_ready = run % 3 != 0;
    auto delay = std::chrono::microseconds(after_ready ? 5000 + rng() % 45000 : rng() % 60000);
    Killed killed = run_and_kill(path, delay, after_ready);
    ASSERT_TRUE(WIFSIGNALED(killed.status) && WTERMSIG(killed.status) == SIGKILL)
        << "run " << run << " ended on its own: " << killed.stdout_text.substr(0, 200);
    std::istringstream lines(killed.stdout_text);
    std::string line;
    size_t before = committed.size();
    while (std::getline(lines, line)) {
      if (line != "ready") committed.insert(std::stoll(line));
    }
    killed_while_writing += committed.size() > before;

    // Reopened as the resuming writer would (quick_check included): a writer killed between
    // creating the file and migrating it leaves an empty file, which a writer takes as fresh.
    Connection c = open_database(path, OpenMode::kReadWrite);
    Statement integrity(c, "PRAGMA integrity_check");
    ASSERT_TRUE(integrity.step());
    ASSERT_EQ(integrity.column_text(0), "ok") << "run " << run;
    Statement done(c, "SELECT id FROM candidates WHERE state = 'DONE'");
    std::set<int64_t> done_ids;
    while (done.step()) done_ids.insert(done.column_int(0));
    for (int64_t id : committed) ASSERT_TRUE(done_ids.count(id)) << "run " << run << ": committed " << id << " lost";
    Statement partial(c, "SELECT count(*) FROM candidates c WHERE c.state = 'DONE' AND "
                         "(SELECT count(*) FROM metrics m WHERE m.candidate_id = c.id) != 10");
    ASSERT_TRUE(partial.step());
    ASSERT_EQ(partial.column_int(0), 0) << "run " << run << ": a DONE candidate lacks metrics";
  }
  EXPECT_GT(killed_while_writing, 15) << "most kills should land in the middle of the write stream";
  EXPECT_GT(committed.size(), 1000u);
}

}  // namespace
}  // namespace cdmoe::db
