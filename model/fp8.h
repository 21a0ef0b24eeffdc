// FP8 weights as DeepSeek-V3/R1 and Kimi-K2 ship them: F8_E4M3 (the "fn" variant: 1 sign, 4
// exponent bits with bias 7, 3 mantissa bits, no infinities, 0x7F/0xFF NaN, largest 448) with
// one float32 multiplier per block of block_rows × block_cols weights (`<name>_scale_inv`,
// [ceil(rows / block_rows), ceil(cols / block_cols)]): weight = value × scale_inv. Torch-free;
// the loader dequantises each weight once, into the compute dtype.
#pragma once

#include <cstdint>

namespace cdmoe::model {

// The value of one E4M3FN code (NaN for 0x7F and 0xFF).
float fp8_e4m3_value(uint8_t code);

// The code whose value is nearest `value` (clamped to ±448; ties to the smaller magnitude).
uint8_t fp8_e4m3_code(float value);

// out[r, c] = value(codes[r, c]) × scale_inv[r / block_rows, c / block_cols] for the rows
// [row_begin, row_end) of a row-major rows × cols weight (`codes`, `out` point at row 0; callers
// split the rows across threads). A NaN code is bad input the caller names (returns false; out
// is then unspecified).
bool dequantize_fp8_blocks(const uint8_t* codes, int64_t row_begin, int64_t row_end, int64_t cols,
                           const float* scale_inv, int64_t block_rows, int64_t block_cols, float* out);

}  // namespace cdmoe::model
