// libFuzzer target: the safetensors header parser on arbitrary bytes must either accept the
// file (and then every tensor lies inside it) or throw cdmoe::Error; never crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cdmoe::model::SafetensorsHeader header = cdmoe::model::parse_safetensors(data, size, "fuzz");
    for (const auto& [name, info] : header.tensors) {
      if (header.data_offset + info.end > size || info.begin > info.end) std::abort();
    }
  } catch (const cdmoe::Error&) {
  }
  return 0;
}
