// Starting or resuming a sweep by name: a new name creates the sweep with its provenance; an
// existing one resumes only when its stored config equals this run's (canonical JSON), else it
// is refused with the keys that differ, so results of two configs never mix under one name.
#pragma once

#include <cstdint>
#include <string>

#include "db/store.h"

namespace cdmoe::coordinator {

struct SweepStart {
  int64_t sweep_id = 0;
  bool resumed = false;
  std::string previous_state;  // of a resumed sweep: RUNNING (the job died), PREEMPTED, DONE
};

SweepStart start_or_resume_sweep(db::Store& store, const db::SweepSpec& spec);

// "key: stored VALUE, now VALUE; ..." for each differing value, nested keys as "key.sub".
std::string describe_config_difference(const Json& stored, const Json& now);

}  // namespace cdmoe::coordinator
