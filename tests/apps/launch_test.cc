// The warning a process gives when its launcher bound it to fewer cores than it computes with
// (mpirun binds each of two ranks to one core by default). Affinity is per thread on Linux, so
// the test binds a thread of its own to one core and asks there.
#include "apps/launch.h"

#include <sched.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace cdmoe {
namespace {

TEST(Launch, ThreadsBeyondTheBoundCoresAreWarnedAboutWithTheWayOut) {
  std::string more, as_many;
  int cores_seen = 0;
  std::thread bound([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    sched_getaffinity(0, sizeof(one), &one);
    int first = 0;
    while (!CPU_ISSET(first, &one)) ++first;  // a core this process may run on
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    cores_seen = usable_cores();
    testing::internal::CaptureStderr();
    warn_if_threads_share_cores("cdmoe-sweep", 2);
    more = testing::internal::GetCapturedStderr();
    testing::internal::CaptureStderr();
    warn_if_threads_share_cores("cdmoe-sweep", 1);
    as_many = testing::internal::GetCapturedStderr();
  });
  bound.join();
  EXPECT_EQ(cores_seen, 1);
  EXPECT_EQ(more, "cdmoe-sweep: warning: 2 compute threads on the 1 core this process is bound to (its launcher's "
                  "binding): they share it; start it with mpirun --bind-to none (or srun --cpus-per-task=2)\n");
  EXPECT_EQ(as_many, "") << "one thread on one core is no warning";
}

}  // namespace
}  // namespace cdmoe
