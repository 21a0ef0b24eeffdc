// SweepLease: one coordinator per sweep at a time (schema 3's sweep_leases table). Two
// coordinators on one sweep (a double submit, a requeued job overlapping the old one) would
// requeue each other's running candidates and mark the sweep FAILED under the live run, so the
// lease is taken, in one write transaction, before anything of the sweep is read or written:
//   - free, or held by this host's process that no longer exists: taken at once;
//   - held by a live process on this host: refused at once (bad input naming host and pid);
//   - held by another host: that owner's heartbeat is watched for up to stale_after_s; if it
//     moves, the owner lives and the newcomer is refused; if the heartbeat is older than
//     stale_after_s, the owner is taken to be dead (a SIGKILLed job) and the lease taken over.
// The holder renews its heartbeat from the sweep loop and releases the lease when it ends.
// Not thread-safe; uses the caller's connection.
#pragma once

#include <cstdint>
#include <string>

#include "db/sqlite.h"

namespace cdmoe::db {

class SweepLease {
 public:
  SweepLease(Connection& connection, const std::string& sweep, double stale_after_s = 120);
  ~SweepLease();  // releases the lease if this process still holds it
  SweepLease(const SweepLease&) = delete;
  SweepLease& operator=(const SweepLease&) = delete;

  // Writes a new heartbeat when the last is older than interval_s. A lease that another
  // process has taken over meanwhile is a runtime error (this process must stop writing).
  void heartbeat(double interval_s = 5);
  bool lost() const { return lost_; }  // heartbeat() found the lease taken over

 private:
  Connection& connection_;
  std::string sweep_, host_;
  int64_t pid_ = 0;
  double last_beat_ = 0;
  bool lost_ = false;
};

}  // namespace cdmoe::db
