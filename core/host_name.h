// The name of the host this process runs on (gethostname), as sweeps, leases, results and
// temporary files record it; "unknown" when the system will not say. Torch-free, thread-safe.
#pragma once

#include <string>

namespace cdmoe {

std::string host_name();

}  // namespace cdmoe
