// The sweep lease (db/sweep_lease.h): one coordinator per sweep, a dead or silent owner's lease
// taken over, a live one refusing the newcomer with nothing changed.
#include "db/sweep_lease.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/host_name.h"
#include "db/store.h"
#include "tests/test_util.h"

namespace cdmoe::db {
namespace {

using cdmoe::testing::TempDir;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A pid that existed a moment ago and no longer does.
int64_t dead_pid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

void put_holder(Connection& c, const std::string& sweep, const std::string& host, int64_t pid, double heartbeat) {
  Statement s(c, "INSERT OR REPLACE INTO sweep_leases (sweep, host, pid, heartbeat) VALUES (?, ?, ?, ?)");
  s.bind_all(sweep, host, pid, heartbeat).run();
}

struct Holder {
  std::string host;
  int64_t pid = 0;
  double heartbeat = 0;
};

std::optional<Holder> holder(Connection& c, const std::string& sweep) {
  Statement s(c, "SELECT host, pid, heartbeat FROM sweep_leases WHERE sweep = ?");
  s.bind(1, sweep);
  if (!s.step()) return std::nullopt;
  return Holder{s.column_text(0), s.column_int(1), s.column_double(2)};
}

TEST(SweepLease, TakenWhenFreeHeldWhileAliveReleasedAtTheEnd) {
  TempDir dir;
  Store store(dir.file("l.db"));
  {
    SweepLease lease(store.connection(), "s");
    auto held = holder(store.connection(), "s");
    ASSERT_TRUE(held);
    EXPECT_EQ(held->host, host_name());
    EXPECT_EQ(held->pid, int64_t(getpid()));
    EXPECT_FALSE(holder(store.connection(), "other")) << "leases are per sweep";
    SweepLease other(store.connection(), "other");
  }
  EXPECT_FALSE(holder(store.connection(), "s")) << "released on destruction";
}

TEST(SweepLease, ALiveOwnerOnThisHostRefusesTheNewcomerAtOnceChangingNothing) {
  TempDir dir;
  Store store(dir.file("l.db"));
  const int64_t live = int64_t(getppid());  // the test runner's parent: alive
  put_holder(store.connection(), "s", host_name(), live, unix_now() - 1000);  // even with an old heartbeat
  try {
    SweepLease lease(store.connection(), "s");
    ADD_FAILURE() << "took a live owner's lease";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    std::string message = e.what();
    EXPECT_NE(message.find("sweep \"s\" is being run by another cdmoe-sweep (host " + host_name() + ", pid " +
                           std::to_string(live)), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
  auto held = holder(store.connection(), "s");
  ASSERT_TRUE(held);
  EXPECT_EQ(held->pid, live) << "the owner's lease is untouched";
}

TEST(SweepLease, ADeadOwnerOnThisHostIsTakenOverAtOnce) {
  TempDir dir;
  Store store(dir.file("l.db"));
  put_holder(store.connection(), "s", host_name(), dead_pid(), unix_now());
  SweepLease lease(store.connection(), "s");
  EXPECT_EQ(holder(store.connection(), "s")->pid, int64_t(getpid()));
}

TEST(SweepLease, AnotherHostsOwnerIsTakenOverOnlyWhenItsHeartbeatIsStale) {
  TempDir dir;
  Store store(dir.file("l.db"));
  // Silent for longer than stale_after: a SIGKILLed job on another node.
  put_holder(store.connection(), "old", "node-17", 4242, unix_now() - 10);
  SweepLease old_lease(store.connection(), "old", /*stale_after_s=*/5);
  EXPECT_EQ(holder(store.connection(), "old")->host, host_name());

  // Fresh but silent: the newcomer waits until it goes stale, then takes it.
  put_holder(store.connection(), "quiet", "node-17", 4242, unix_now());
  auto start = std::chrono::steady_clock::now();
  SweepLease quiet(store.connection(), "quiet", /*stale_after_s=*/1.5);
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0) << "it waited";
  EXPECT_EQ(holder(store.connection(), "quiet")->host, host_name());

  // Beating: the owner lives, the newcomer is refused and changes nothing.
  put_holder(store.connection(), "alive", "node-17", 4242, unix_now());
  std::atomic<bool> done{false};
  std::thread owner([&] {
    Store owner_store(dir.file("l.db"));
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      Statement beat(owner_store.connection(), "UPDATE sweep_leases SET heartbeat = ? WHERE sweep = 'alive'");
      beat.bind_all(unix_now()).run();
    }
  });
  try {
    SweepLease lease(store.connection(), "alive", /*stale_after_s=*/30);
    ADD_FAILURE() << "took a beating owner's lease";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("host node-17, pid 4242"), std::string::npos) << e.what();
  }
  done = true;
  owner.join();
  EXPECT_EQ(holder(store.connection(), "alive")->host, "node-17");
}

TEST(SweepLease, AHolderWhoseLeaseWasTakenOverStopsAtItsNextHeartbeat) {
  TempDir dir;
  Store store(dir.file("l.db"));
  SweepLease lease(store.connection(), "s");
  lease.heartbeat(0);
  EXPECT_FALSE(lease.lost());
  put_holder(store.connection(), "s", "node-3", 7, unix_now());  // taken over meanwhile
  try {
    lease.heartbeat(0);
    ADD_FAILURE() << "kept writing after a takeover";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("lease was taken over (host node-3, pid 7"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(lease.lost());
  EXPECT_EQ(holder(store.connection(), "s")->host, "node-3") << "the new owner's lease is left alone";
}

}  // namespace
}  // namespace cdmoe::db
