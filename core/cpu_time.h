// CPU time this process has used (user + system, all threads), in seconds: what the sweep
// and the dispatch benchmark report as the coordinator's CPU share.
#pragma once

#include <sys/resource.h>

namespace cdmoe {

inline double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

}  // namespace cdmoe
