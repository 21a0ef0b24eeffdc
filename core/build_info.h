// Facts about this binary fixed at build time, recorded as provenance of every sweep.
#pragma once

namespace cdmoe {

// Full git commit hash of the sources this binary was built from, "-dirty" appended when
// tracked files had uncommitted changes, or "unknown" outside a git checkout.
const char* git_commit();

}  // namespace cdmoe
