#include "db/sweep_lease.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "core/host_name.h"

namespace cdmoe::db {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool process_exists(int64_t pid) { return pid > 0 && (kill(pid_t(pid), 0) == 0 || errno == EPERM); }

struct Holder {
  bool present = false;
  std::string host;
  int64_t pid = 0;
  double heartbeat = 0;
};

Holder read_holder(Connection& connection, const std::string& sweep) {
  Statement query(connection, "SELECT host, pid, heartbeat FROM sweep_leases WHERE sweep = ?");
  query.bind(1, sweep);
  Holder holder;
  if (query.step()) holder = {true, query.column_text(0), query.column_int(1), query.column_double(2)};
  return holder;
}

std::string describe(const Holder& holder, double now) {
  return "host " + holder.host + ", pid " + std::to_string(holder.pid) + ", last heartbeat " +
         std::to_string(int64_t(std::lround(now - holder.heartbeat))) + " s ago";
}

}  // namespace

SweepLease::SweepLease(Connection& connection, const std::string& sweep, double stale_after_s)
    : connection_(connection), sweep_(sweep), host_(host_name()), pid_(int64_t(getpid())) {
  double watched_since = 0, first_beat = 0;
  for (;;) {
    Transaction take(connection_);
    Holder holder = read_holder(connection_, sweep_);
    double now = unix_now();
    bool free = !holder.present || (holder.host == host_ && holder.pid == pid_);
    bool dead_here = holder.present && holder.host == host_ && !process_exists(holder.pid);
    // On this host the process table answers; elsewhere only the heartbeat can (a one-rank
    // coordinator inside a long task beats late, but its pid is here to be seen).
    bool stale = holder.present && holder.host != host_ && now - holder.heartbeat > stale_after_s;
    if (free || dead_here || stale) {
      Statement write(connection_,
                      "INSERT INTO sweep_leases (sweep, host, pid, heartbeat) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (sweep) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                      "heartbeat = excluded.heartbeat, acquired_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
      write.bind_all(sweep_, host_, pid_, now).run();
      take.commit();
      last_beat_ = now;
      return;
    }
    std::string owner = describe(holder, now);
    if (holder.host == host_) {
      throw_bad_input("sweep \"" + sweep_ + "\" is being run by another cdmoe-sweep (" + owner +
                      "); nothing was changed. Wait for it to end or stop it, then run this again");
    }
    if (watched_since == 0) watched_since = now, first_beat = holder.heartbeat;
    if (holder.heartbeat != first_beat) {
      throw_bad_input("sweep \"" + sweep_ + "\" is being run by another cdmoe-sweep (" + owner +
                      ", its heartbeat moved while this one waited); nothing was changed");
    }
    take.commit();  // nothing written: only ends the read
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

SweepLease::~SweepLease() {
  if (lost_) return;
  try {
    Statement release(connection_, "DELETE FROM sweep_leases WHERE sweep = ? AND host = ? AND pid = ?");
    release.bind_all(sweep_, host_, pid_).run();
  } catch (...) {
    // A lease left behind is taken over by the next run (its pid is gone); never throw here.
  }
}

void SweepLease::heartbeat(double interval_s) {
  double now = unix_now();
  if (now - last_beat_ < interval_s) return;
  Statement beat(connection_, "UPDATE sweep_leases SET heartbeat = ? WHERE sweep = ? AND host = ? AND pid = ?");
  beat.bind_all(now, sweep_, host_, pid_).run();
  if (connection_.changes() == 0) {
    lost_ = true;
    Holder holder = read_holder(connection_, sweep_);
    throw_runtime("sweep \"" + sweep_ + "\": this coordinator's lease was taken over (" +
                  (holder.present ? describe(holder, now) : std::string("no holder")) + "); stopping without writing");
  }
  last_beat_ = now;
}

}  // namespace cdmoe::db
