// comm-private: turns an MPI return code into a runtime error naming the call. Includes mpi.h,
// so only comm/*.cc may include it.
#pragma once

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace cdmoe::comm {

inline void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw_runtime(std::string(call) + " failed: " + std::string(text, size_t(length)));
}

}  // namespace cdmoe::comm
