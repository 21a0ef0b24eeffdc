#include "model/fp8.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace cdmoe::model {
namespace {

std::array<float, 256> e4m3_table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int exponent = (code >> 3) & 0xF, mantissa = code & 0x7;
    float magnitude;
    if (exponent == 0xF && mantissa == 0x7) {
      magnitude = std::numeric_limits<float>::quiet_NaN();
    } else if (exponent == 0) {  // subnormal: mantissa/8 × 2^(1 - 7)
      magnitude = std::ldexp(float(mantissa) / 8.0f, -6);
    } else {
      magnitude = std::ldexp(1.0f + float(mantissa) / 8.0f, exponent - 7);
    }
    table[size_t(code)] = (code & 0x80) ? -magnitude : magnitude;
  }
  return table;
}

const std::array<float, 256>& table() {
  static const std::array<float, 256> values = e4m3_table();
  return values;
}

}  // namespace

float fp8_e4m3_value(uint8_t code) { return table()[code]; }

uint8_t fp8_e4m3_code(float value) {
  const std::array<float, 256>& values = table();
  const float magnitude = std::min(std::fabs(value), values[0x7E]);
  // The positive codes 0x00..0x7E ascend: the first at or above the magnitude, or the one before.
  const float* above = std::lower_bound(values.data(), values.data() + 0x7F, magnitude);
  int code = int(above - values.data());
  if (code > 0 && magnitude - values[size_t(code - 1)] <= values[size_t(code)] - magnitude) --code;
  return uint8_t(code | (std::signbit(value) && code != 0 ? 0x80 : 0));
}

bool dequantize_fp8_blocks(const uint8_t* codes, int64_t row_begin, int64_t row_end, int64_t cols,
                           const float* scale_inv, int64_t block_rows, int64_t block_cols, float* out) {
  const std::array<float, 256>& values = table();
  const int64_t scale_cols = (cols + block_cols - 1) / block_cols;
  bool finite = true;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* scales = scale_inv + (r / block_rows) * scale_cols;
    const uint8_t* in = codes + r * cols;
    float* row = out + r * cols;
    for (int64_t begin = 0, block = 0; begin < cols; begin += block_cols, ++block) {  // no division per weight
      const float scale = scales[block];
      const int64_t end = std::min(cols, begin + block_cols);
      for (int64_t c = begin; c < end; ++c) {
        finite &= (in[c] & 0x7F) != 0x7F;
        row[c] = values[in[c]] * scale;
      }
    }
  }
  return finite;
}

}  // namespace cdmoe::model
